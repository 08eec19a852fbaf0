package muc_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/mod/muc"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// TestMentionAbsentMember: a message in a members-only room naming a
// member who is not in the room fires server.Mentioned for that member —
// by account name, by registered nick, by XEP-0372 reference — and for
// nobody else: not the sender, not a member in the room, not a
// non-member, not anyone in a room open to all.
func TestMentionAbsentMember(t *testing.T) {
	d := start(t) // alice, bob, carol
	if err := d.Store.CreateAccount("dave", "dave-pw", false); err != nil {
		t.Fatal(err)
	}
	if err := d.Store.CreateAccount("erin", "erin-pw", false); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []server.Mention
	server.Mentioned.On(d.Server, func(m server.Mention) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	})
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var users []string
		for _, m := range got {
			users = append(users, m.User)
		}
		got = nil
		slices.Sort(users)
		return users
	}
	svc := muc.Of(d.Server)
	if err := svc.EnsureRoom("team", "Team", false); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol", "erin"} {
		if err := svc.SetMember("team", u, true); err != nil {
			t.Fatal(err)
		}
	}
	team := "team@" + host
	alice, bob := login(t, d, "alice"), login(t, d, "bob")
	join(t, alice, team, "Alice", "")
	join(t, bob, team, "bob", "")

	// Fired after the message's commit, before it is fanned out, so by
	// the time its echo reaches the sender the listener has run.
	say := func(body, extra string) []string {
		t.Helper()
		alice.Sendf("<message to='%s' type='groupchat'><body>%s</body>%s</message>", team, body, extra)
		alice.Expect("echo", isGroupchat(body))
		return take()
	}
	// carol absent member: yes; bob present, dave non-member, alice
	// herself: no; "carolyn" is not carol.
	if u := say("carol, bob, dave and alice: carolyn says hi", ""); !slices.Equal(u, []string{"carol"}) {
		t.Fatalf("mentioned %v, want [carol]", u)
	}
	alice.Sendf("<message to='%s' type='groupchat'><body>CAROL?</body></message>", team)
	alice.Expect("echo", isGroupchat("CAROL?"))
	mu.Lock()
	if len(got) != 1 || got[0].User != "carol" || got[0].Room != team || got[0].From != team+"/Alice" ||
		got[0].Sender != "alice@example.test" || got[0].Body != "CAROL?" {
		t.Fatalf("mention %+v", got)
	}
	got = nil
	mu.Unlock()
	if u := say("nothing for anyone", ""); len(u) != 0 {
		t.Fatalf("mentioned %v", u)
	}
	// XEP-0372 references: erin's account (dave's is no member's), and
	// a room nick.
	if u := say("hey you", "<reference xmlns='urn:xmpp:reference:0' type='mention' uri='xmpp:erin@example.test'/>"+
		"<reference xmlns='urn:xmpp:reference:0' type='mention' uri='xmpp:dave@example.test'/>"); !slices.Equal(u, []string{"erin"}) {
		t.Fatalf("reference: mentioned %v, want [erin]", u)
	}
	if u := say("you there", "<reference xmlns='urn:xmpp:reference:0' type='mention' uri='xmpp:"+team+"/carol'/>"); !slices.Equal(u, []string{"carol"}) {
		t.Fatalf("nick reference: mentioned %v, want [carol]", u)
	}
	// Bob leaves: now he is absent.
	bob.Sendf("<presence to='%s/bob' type='unavailable'/>", team)
	alice.Expect("bob left", modtest.IsPresence("unavailable", team+"/bob"))
	if u := say("bob?", ""); !slices.Equal(u, []string{"bob"}) {
		t.Fatalf("mentioned %v, want [bob]", u)
	}

	// A registered nickname (of two words, named in full-width letters)
	// names its member, who never joined.
	erin := login(t, d, "erin")
	if r := iq(t, erin, "set", team, "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"+
		"<field var='muc#register_roomnick'><value>Ernie Bee</value></field></x></query>"); modtest.ErrCond(r) != "" {
		t.Fatalf("erin registers a nick: %s", r)
	}
	if u := say("ask ｅｒｎｉｅ bee about it", ""); !slices.Equal(u, []string{"erin"}) {
		t.Fatalf("registered nick: mentioned %v, want [erin]", u)
	}
	if u := say("ask ernie about it", ""); len(u) != 0 {
		t.Fatalf("half a registered nick: mentioned %v", u)
	}

	// A room open to all: carol is a member, but nobody is woken.
	open := "open@" + host
	create(t, alice, open, "Alice", "")
	if err := svc.SetMember("open", "carol", true); err != nil {
		t.Fatal(err)
	}
	alice.Sendf("<message to='%s' type='groupchat'><body>carol</body></message>", open)
	alice.Expect("echo", func(el *stream.Element) bool {
		return isGroupchat("carol")(el) && strings.HasPrefix(el.Get("from"), open)
	})
	if u := take(); len(u) != 0 {
		t.Fatalf("open room: mentioned %v", u)
	}
}
