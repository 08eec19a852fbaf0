package pep

import (
	"log/slog"
	"path/filepath"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// testNSMUCUser is XEP-0045's occupant payload, which every presence a room
// sends carries.
const testNSMUCUser = "http://jabber.org/protocol/muc#user"

// TestRoomPresenceNotRemote: the presences a room sends a member about its
// occupants are not a remote contact's resources. Each was remembered
// (1000 members in rooms of 50: 20,000 entries, the global bound), ~3 KiB
// of RssAnon per idle occupant (issue 12's target: under 2 KiB). A
// contact's presence on another server still is.
func TestRoomPresenceNotRemote(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := server.New("example.test", st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := &mod{srv: srv}
	m.registerRemote()
	to := jid.MustParse("alice@example.test/phone")
	for _, from := range []string{"room@groups.example.test/bob", "room@conference.other.test/carol"} {
		el := stream.New(stream.NSClient, "presence", "from", from, "to", to.String())
		el.Add(stream.New(testNSMUCUser, "x").Add(stream.New(testNSMUCUser, "item", "affiliation", "none", "role", "participant")))
		m.remotePresence(&server.Stanza{El: el, From: jid.MustParse(from), To: to})
	}
	if n := m.remote.n; n != 0 {
		t.Fatalf("%d room occupants remembered as remote contacts' resources, want 0", n)
	}
	contact := "dave@other.test/laptop"
	m.remotePresence(&server.Stanza{El: stream.New(stream.NSClient, "presence", "from", contact, "to", "alice@example.test"),
		From: jid.MustParse(contact), To: jid.MustParse("alice@example.test")})
	if _, ok := m.remote.res["alice"][contact]; !ok {
		t.Fatalf("a remote contact's presence is no longer remembered: %v", m.remote.res)
	}
}
