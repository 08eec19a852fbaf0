package muc

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// BenchmarkMentionsClubRoom: what looking for absent members costs a
// message in the club's default room (every account a member, so words
// of the body are looked up as accounts) — under the room's mutex.
func BenchmarkMentionsClubRoom(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	srv, err := server.New("example.test", st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	m, err := RegisterWith(srv, Options{NoDefaultRoom: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := m.srv.Store.CreateAccount(u, u+"-pw", false); err != nil {
			b.Fatal(err)
		}
	}
	cfg := defaultConfig()
	cfg.MembersOnly = true
	r, _, err := m.create("club", "alice@example.test", "alice", cfg, 0)
	if err != nil {
		b.Fatal(err)
	}
	r.st.AllLocal = true
	r.mu.Unlock()
	o := &occupant{nick: "alice", bare: "alice@example.test"}
	out := stream.New(stream.NSClient, "message", "type", "groupchat", "from", "club@groups.example.test/alice").
		Add(stream.New(stream.NSClient, "body").AddText("so who is coming to the barbecue on saturday, I will bring the salad and carol said she has the grill ready by noon"))
	b.ReportAllocs()
	for b.Loop() {
		m.mentions(r, o, out)
	}
}
