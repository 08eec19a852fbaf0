package muc_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/mod/muc"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	host = "groups.example.test"
	room = "club@" + host
)

func start(t *testing.T) *xmppd.Daemon {
	d := xmpptest.Start(t, nil)
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	return d
}

func login(t *testing.T, d *xmppd.Daemon, user string) *modtest.Client {
	c := modtest.Login(t, d, user, "r")
	c.Send("<presence/>")
	c.Expect("own presence", func(el *stream.Element) bool { return el.Local == "presence" && el.Get("from") == c.JID })
	return c
}

func mucX(el *stream.Element) *stream.Element {
	return el.Child("http://jabber.org/protocol/muc#user", "x")
}

func codes(el *stream.Element) map[string]bool {
	out := map[string]bool{}
	if x := mucX(el); x != nil {
		for _, s := range x.Children() {
			if s.Local == "status" {
				out[s.Get("code")] = true
			}
		}
	}
	return out
}

func item(el *stream.Element) *stream.Element {
	if x := mucX(el); x != nil {
		return x.Child("http://jabber.org/protocol/muc#user", "item")
	}
	return nil
}

func occID(el *stream.Element) string {
	var ids []string
	for _, c := range el.Children() {
		if c.Space == "urn:xmpp:occupant-id:0" {
			ids = append(ids, c.Get("id"))
		}
	}
	if len(ids) != 1 {
		return fmt.Sprintf("%d occupant-ids", len(ids))
	}
	return ids[0]
}

// join joins room as nick and returns the self-presence; it reads up to
// the subject that ends a join.
func join(t *testing.T, c *modtest.Client, roomJID, nick, extra string) (self *stream.Element, got []*stream.Element) {
	t.Helper()
	c.Sendf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>", roomJID, nick, extra)
	for range 300 {
		el := c.El()
		if el.Local == "presence" && el.Get("type") == "error" {
			t.Fatalf("%s: join %s as %s: %s", c.JID, roomJID, nick, el)
		}
		if el.Local == "presence" && codes(el)["110"] {
			self = el
		}
		if el.Local == "message" && el.Child("jabber:client", "subject") != nil && el.Child("jabber:client", "body") == nil {
			if self == nil {
				t.Fatalf("subject before self-presence: %s", el)
			}
			return self, got
		}
		got = append(got, el)
	}
	t.Fatalf("%s: join never ended", c.JID)
	return nil, nil
}

// create makes roomJID by joining it as nick (201) and accepts the
// default configuration with the instant-room request (XEP-0045
// §10.1.2), which opens the room to others (lock.go).
func create(t *testing.T, c *modtest.Client, roomJID, nick, extra string) (self *stream.Element, got []*stream.Element) {
	t.Helper()
	self, got = join(t, c, roomJID, nick, extra)
	if !codes(self)["201"] {
		t.Fatalf("%s: %s was not made by this join: %s", c.JID, roomJID, self)
	}
	if r := iq(t, c, "set", roomJID, instantRoom); r.Get("type") != "result" {
		t.Fatalf("%s: instant room %s: %s", c.JID, roomJID, r)
	}
	return self, got
}

const instantRoom = "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>"

func joinErr(t *testing.T, c *modtest.Client, roomJID, nick, extra string) string {
	t.Helper()
	c.Sendf("<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>", roomJID, nick, extra)
	el := c.Expect("presence error", modtest.IsPresence("error", roomJID+"/"+nick))
	return modtest.ErrCond(el)
}

func isGroupchat(body string) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		return el.Local == "message" && el.Get("type") == "groupchat" && el.ChildText("jabber:client", "body") == body
	}
}

func isErrorMsg(el *stream.Element) bool { return el.Local == "message" && el.Get("type") == "error" }

func iq(t *testing.T, c *modtest.Client, typ, to, payload string) *stream.Element {
	t.Helper()
	id := fmt.Sprintf("iq%d", time.Now().UnixNano())
	c.Sendf("<iq type='%s' id='%s' to='%s'>%s</iq>", typ, id, to, payload)
	return c.Expect("iq answer "+id, func(el *stream.Element) bool { return el.Local == "iq" && el.Get("id") == id })
}

// TestRoomLife: create on join (201), a second member joins, messages fan
// out with occupant JID, stanza-id and the room's occupant-id (a client's
// own stripped), nickname case/width conflicts, private messages, subject
// rules, a non-occupant's message refused, leave.
func TestRoomLife(t *testing.T) {
	d := start(t)
	alice, bob, carol := login(t, d, "alice"), login(t, d, "bob"), login(t, d, "carol")

	self, _ := create(t, alice, room, "Alice", "")
	if c := codes(self); !c["201"] || !c["110"] {
		t.Fatalf("creator's self-presence lacks 201/110: %s", self)
	}
	if it := item(self); it.Get("affiliation") != "owner" || it.Get("role") != "moderator" {
		t.Fatalf("creator is not owner/moderator: %s", self)
	}
	aliceID := occID(self)
	if len(aliceID) < 16 {
		t.Fatalf("occupant-id: %s", self)
	}

	// Same nick up to case, or in full-width letters: conflict.
	for _, nick := range []string{"alice", "ＡＬＩＣＥ"} {
		if got := joinErr(t, bob, room, nick, ""); got != "conflict" {
			t.Fatalf("bob joining as %q: %s, want conflict", nick, got)
		}
	}
	self, others := join(t, bob, room, "Bob", "")
	if codes(self)["201"] {
		t.Fatalf("201 for a room that existed: %s", self)
	}
	if len(others) == 0 || others[0].Get("from") != room+"/Alice" {
		t.Fatalf("bob did not first get Alice's presence: %v", others)
	}
	if item(others[0]).Get("jid") != "" {
		t.Fatalf("semi-anonymous room showed alice's JID to a participant: %s", others[0])
	}
	p := alice.Expect("bob's presence", modtest.IsPresence("", room+"/Bob"))
	if item(p).Get("jid") != "bob@example.test/r" {
		t.Fatalf("a moderator sees real JIDs: %s", p)
	}

	// A message with two forged occupant-ids and a forged stanza-id.
	bob.Sendf("<message to='%s' type='groupchat' id='m1'><body>hi all</body>"+
		"<occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged2'/>"+
		"<stanza-id xmlns='urn:xmpp:sid:0' id='x' by='%s'/></message>", room, room)
	for _, c := range []*modtest.Client{alice, bob} {
		m := c.Expect("groupchat", isGroupchat("hi all"))
		if m.Get("from") != room+"/Bob" || m.Get("id") != "m1" {
			t.Fatalf("groupchat addresses: %s", m)
		}
		if id := occID(m); id == "forged" || id == "forged2" || strings.Contains(id, "occupant-ids") || id == aliceID {
			t.Fatalf("occupant-id not the room's own: %s", m)
		}
		sids := 0
		for _, x := range m.Children() {
			if x.Local == "stanza-id" {
				sids++
				if x.Get("id") == "x" {
					t.Fatalf("forged stanza-id kept: %s", m)
				}
			}
		}
		if sids != 1 {
			t.Fatalf("%d stanza-ids: %s", sids, m)
		}
	}

	// A non-occupant's message: not-acceptable, nobody gets it.
	carol.Sendf("<message to='%s' type='groupchat' id='c1'><body>let me in</body></message>", room)
	if e := carol.Expect("error", isErrorMsg); modtest.ErrCond(e) != "not-acceptable" {
		t.Fatalf("non-occupant message: %s", e)
	}
	// A non-occupant asking for the occupant list.
	if r := iq(t, carol, "get", room, "<query xmlns='http://jabber.org/protocol/muc#admin'><item role='participant'/></query>"); modtest.ErrCond(r) != "forbidden" {
		t.Fatalf("non-occupant occupant list: %s", r)
	}
	alice.Quiet("nothing from carol")

	// Private message.
	bob.Sendf("<message to='%s/alice' type='chat'><body>psst</body></message>", room)
	pm := alice.Expect("pm", func(el *stream.Element) bool { return el.ChildText("jabber:client", "body") == "psst" })
	if pm.Get("from") != room+"/Bob" || pm.Get("type") != "chat" {
		t.Fatalf("pm: %s", pm)
	}

	// Subject: a participant may not (default), the owner may.
	bob.Sendf("<message to='%s' type='groupchat'><subject>bob's</subject></message>", room)
	if e := bob.Expect("error", isErrorMsg); modtest.ErrCond(e) != "forbidden" {
		t.Fatalf("participant subject: %s", e)
	}
	alice.Sendf("<message to='%s' type='groupchat'><subject>Club news</subject></message>", room)
	bob.Expect("subject", func(el *stream.Element) bool { return el.ChildText("jabber:client", "subject") == "Club news" })

	// disco
	info := iq(t, carol, "get", room, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	if !strings.Contains(info.String(), "muc_persistent") || !strings.Contains(info.String(), "muc#roominfo") {
		t.Fatalf("room disco#info: %s", info)
	}
	items := iq(t, carol, "get", host, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	if !strings.Contains(items.String(), room) {
		t.Fatalf("service disco#items lacks the public room: %s", items)
	}

	// Leave.
	bob.Sendf("<presence to='%s/Bob' type='unavailable'/>", room)
	if p := bob.Expect("own unavailable", modtest.IsPresence("unavailable", room+"/Bob")); !codes(p)["110"] {
		t.Fatalf("leave: %s", p)
	}
	alice.Expect("bob left", modtest.IsPresence("unavailable", room+"/Bob"))
	bob.Sendf("<message to='%s' type='groupchat'><body>after leaving</body></message>", room)
	if e := bob.Expect("error", isErrorMsg); modtest.ErrCond(e) != "not-acceptable" {
		t.Fatalf("message after leaving: %s", e)
	}

	// A client that disconnects leaves the room (directed presence).
	self, _ = join(t, bob, room, "Bob", "")
	alice.Expect("bob back", modtest.IsPresence("", room+"/Bob"))
	bob.Close()
	alice.Expect("bob gone", modtest.IsPresence("unavailable", room+"/Bob"))
}

// TestAdminBadInput: each refused change is the specified error and
// changes nothing; kick and ban work.
func TestAdminBadInput(t *testing.T) {
	d := start(t)
	alice, bob, carol := login(t, d, "alice"), login(t, d, "bob"), login(t, d, "carol")
	create(t, alice, room, "alice", "")
	admin := func(c *modtest.Client, items string) string {
		t.Helper()
		return modtest.ErrCond(iq(t, c, "set", room, "<query xmlns='http://jabber.org/protocol/muc#admin'>"+items+"</query>"))
	}
	if got := admin(alice, "<item affiliation='member' jid='bob@example.test'/>"); got != "" {
		t.Fatalf("owner makes bob member: %s", got)
	}
	join(t, bob, room, "bob", "")
	join(t, carol, room, "carol", "")
	alice.Sync()
	bob.Sync()
	carol.Sync()

	for _, tc := range []struct {
		name string
		c    *modtest.Client
		item string
		want string
	}{
		{"member grants itself owner", bob, "<item affiliation='owner' jid='bob@example.test'/>", "forbidden"},
		{"member bans the owner", bob, "<item affiliation='outcast' jid='alice@example.test'/>", "forbidden"},
		{"last owner demotes itself", alice, "<item affiliation='member' jid='alice@example.test'/>", "conflict"},
		{"last owner bans itself", alice, "<item affiliation='outcast' jid='alice@example.test'/>", "conflict"},
		{"unknown affiliation", alice, "<item affiliation='king' jid='bob@example.test'/>", "bad-request"},
		{"no jid", alice, "<item affiliation='member'/>", "bad-request"},
		{"both role and affiliation", alice, "<item affiliation='member' role='visitor' nick='bob'/>", "bad-request"},
		{"role without nick", alice, "<item role='visitor'/>", "bad-request"},
		{"participant kicks", carol, "<item role='none' nick='bob'/>", "forbidden"},
		{"kick the owner", alice, "<item role='none' nick='alice'/>", "not-allowed"},
		{"a good item then a bad one", alice, "<item affiliation='outcast' jid='carol@example.test'/><item affiliation='bogus' jid='x@y'/>", "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := admin(tc.c, tc.item); got != tc.want {
				t.Fatalf("%s, want %s", got, tc.want)
			}
		})
	}
	alice.Quiet("nothing changed")
	carol.Quiet("carol was not banned by the refused batch")

	// An admin may not ban the owner.
	if got := admin(alice, "<item affiliation='admin' jid='bob@example.test'/>"); got != "" {
		t.Fatalf("make bob admin: %s", got)
	}
	if got := admin(bob, "<item affiliation='outcast' jid='alice@example.test'/>"); got != "not-allowed" {
		t.Fatalf("admin bans owner: %s", got)
	}
	alice.Sync()
	carol.Sync()

	// Kick carol: 307, she leaves; then ban her: 301 on rejoin refusal.
	if got := admin(bob, "<item role='none' nick='carol'><reason>calm down</reason></item>"); got != "" {
		t.Fatalf("kick: %s", got)
	}
	if p := carol.Expect("kicked", modtest.IsPresence("unavailable", room+"/carol")); !codes(p)["307"] || !codes(p)["110"] {
		t.Fatalf("kick presence: %s", p)
	}
	alice.Expect("carol kicked", modtest.IsPresence("unavailable", room+"/carol"))
	if got := admin(bob, "<item affiliation='outcast' jid='carol@example.test'/>"); got != "" {
		t.Fatalf("ban: %s", got)
	}
	if got := joinErr(t, carol, room, "carol", ""); got != "forbidden" {
		t.Fatalf("banned rejoin: %s", got)
	}
	// Owner list is the owner's.
	r := iq(t, alice, "get", room, "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast'/></query>")
	if !strings.Contains(r.String(), "carol@example.test") {
		t.Fatalf("outcast list: %s", r)
	}
}

// TestConfigAndMembersOnly: the owner form, members-only, invitations.
func TestConfigAndMembersOnly(t *testing.T) {
	d := start(t)
	alice, bob, carol := login(t, d, "alice"), login(t, d, "bob"), login(t, d, "carol")
	join(t, alice, room, "alice", "")
	if r := iq(t, bob, "get", room, "<query xmlns='http://jabber.org/protocol/muc#owner'/>"); modtest.ErrCond(r) != "forbidden" {
		t.Fatalf("non-owner config: %s", r)
	}
	form := iq(t, alice, "get", room, "<query xmlns='http://jabber.org/protocol/muc#owner'/>")
	if !strings.Contains(form.String(), "muc#roomconfig_membersonly") {
		t.Fatalf("form: %s", form)
	}
	set := func(fields string) string {
		return modtest.ErrCond(iq(t, alice, "set", room, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
			"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+fields+"</x></query>"))
	}
	if got := set("<field var='muc#roomconfig_membersonly'><value>perhaps</value></field>"); got != "bad-request" {
		t.Fatalf("bad boolean: %s", got)
	}
	if got := set("<field var='muc#roomconfig_membersonly'><value>1</value></field><field var='muc#roomconfig_publicroom'><value>0</value></field>"); got != "" {
		t.Fatalf("members-only: %s", got)
	}
	if got := joinErr(t, bob, room, "bob", ""); got != "registration-required" {
		t.Fatalf("non-member joins members-only: %s", got)
	}
	items := iq(t, carol, "get", host, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	if strings.Contains(items.String(), room) {
		t.Fatalf("hidden room listed: %s", items)
	}
	// Mediated invitation makes bob a member.
	alice.Sendf("<message to='%s'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='bob@example.test'><reason>come</reason></invite></x></message>", room)
	inv := bob.Expect("invite", func(el *stream.Element) bool { return el.Local == "message" && mucX(el) != nil })
	if inv.Get("from") != room || !strings.Contains(inv.String(), "alice@example.test") {
		t.Fatalf("invite: %s", inv)
	}
	join(t, bob, room, "bob", "")
	// Carol, not invited, still cannot.
	if got := joinErr(t, carol, room, "carol", ""); got != "registration-required" {
		t.Fatalf("carol: %s", got)
	}
	// Destroy.
	if r := iq(t, alice, "set", room, "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy><reason>done</reason></destroy></query>"); modtest.ErrCond(r) != "" {
		t.Fatalf("destroy: %s", r)
	}
	if p := bob.Expect("destroyed", modtest.IsPresence("unavailable", room+"/bob")); mucX(p).Child("http://jabber.org/protocol/muc#user", "destroy") == nil {
		t.Fatalf("destroy presence: %s", p)
	}
	if r := iq(t, carol, "get", room, "<query xmlns='http://jabber.org/protocol/disco#info'/>"); modtest.ErrCond(r) != "item-not-found" {
		t.Fatalf("destroyed room still there: %s", r)
	}
}

// TestRoomCap: one member cannot make the box keep unbounded rooms.
func TestRoomCap(t *testing.T) {
	d := start(t)
	alice := login(t, d, "alice")
	for i := range 20 {
		join(t, alice, fmt.Sprintf("r%d@%s", i, host), "a", "")
	}
	if got := joinErr(t, alice, "r20@"+host, "a", ""); got != "resource-constraint" {
		t.Fatalf("21st room: %s", got)
	}
	bob := login(t, d, "bob")
	join(t, bob, "r20@"+host, "b", "") // others are not affected
	// A room of the 20 destroyed frees a place.
	if r := iq(t, alice, "set", "r0@"+host, "<query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query>"); modtest.ErrCond(r) != "" {
		t.Fatalf("destroy: %s", r)
	}
	alice.Sync()
	join(t, alice, "r21@"+host, "a", "")
}

// TestNotLocalCannotCreate: a stanza from another server cannot make a
// room (only local members create by default).
func TestSelfPing(t *testing.T) {
	d := start(t)
	alice := login(t, d, "alice")
	join(t, alice, room, "alice", "")
	if r := iq(t, alice, "get", room+"/alice", "<ping xmlns='urn:xmpp:ping'/>"); r.Get("type") != "result" {
		t.Fatalf("self-ping while joined: %s", r)
	}
	alice.Sendf("<presence to='%s/alice' type='unavailable'/>", room)
	alice.Sync()
	if r := iq(t, alice, "get", room+"/alice", "<ping xmlns='urn:xmpp:ping'/>"); modtest.ErrCond(r) != "not-acceptable" {
		t.Fatalf("self-ping after leaving: %s", r)
	}
}

// TestHistoryAndArchiveAcrossRestart: messages are in the archive and in
// the history on join after a restart; MAM with RSM pages over them.
func TestHistoryAndArchiveAcrossRestart(t *testing.T) {
	dir := state.Dir(t.TempDir())
	startD := func() *xmppd.Daemon {
		d, err := xmppd.Start(xmppd.Options{State: dir, Domain: xmpptest.Domain, C2S: "127.0.0.1:0", C2STLS: "127.0.0.1:0",
			Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	stop := func(d *xmppd.Daemon) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	}
	d := startD()
	for _, u := range []string{"alice", "bob"} {
		if err := d.Store.CreateAccount(u, u+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	alice := login(t, d, "alice")
	create(t, alice, room, "alice", "")
	for i := range 5 {
		alice.Sendf("<message to='%s' type='groupchat'><body>m%d</body></message>", room, i)
		alice.Expect("echo", isGroupchat(fmt.Sprintf("m%d", i)))
	}
	stop(d)

	d = startD()
	defer stop(d)
	bob := login(t, d, "bob")
	_, got := join(t, bob, room, "bob", "<history maxstanzas='3'/>")
	var hist []string
	for _, el := range got {
		if el.Local == "message" && el.Child("urn:xmpp:delay", "delay") != nil {
			hist = append(hist, el.ChildText("jabber:client", "body"))
		}
	}
	if strings.Join(hist, ",") != "m2,m3,m4" {
		t.Fatalf("history after restart: %v", hist)
	}
	// MAM: pages of 2.
	var all []string
	after := ""
	for page := 0; page < 5; page++ {
		set := "<set xmlns='http://jabber.org/protocol/rsm'><max>2</max>" + after + "</set>"
		id := fmt.Sprintf("q%d", page)
		bob.Sendf("<iq type='set' id='%s' to='%s'><query xmlns='urn:xmpp:mam:2' queryid='%s'>%s</query></iq>", id, room, id, set)
		var fin *stream.Element
		for fin == nil {
			el := bob.El()
			if el.Local == "iq" && el.Get("id") == id {
				fin = el
				break
			}
			if res := el.Child("urn:xmpp:mam:2", "result"); res != nil {
				fw := res.Child("urn:xmpp:forward:0", "forwarded")
				all = append(all, fw.Child("jabber:client", "message").ChildText("jabber:client", "body"))
			}
		}
		f := fin.Child("urn:xmpp:mam:2", "fin")
		if f == nil {
			t.Fatalf("mam answer: %s", fin)
		}
		if f.Get("complete") == "true" {
			break
		}
		last := f.Child("http://jabber.org/protocol/rsm", "set").ChildText("http://jabber.org/protocol/rsm", "last")
		after = "<after>" + last + "</after>"
	}
	if strings.Join(all, ",") != "m0,m1,m2,m3,m4" {
		t.Fatalf("mam pages: %v", all)
	}
}

func stanzaIDOf(el *stream.Element) string {
	if x := el.Child("urn:xmpp:sid:0", "stanza-id"); x != nil {
		return x.Get("id")
	}
	return ""
}

// mamBodies is every archived message's XML, in order.
func mamAll(t *testing.T, c *modtest.Client, roomJID string) string {
	t.Helper()
	id := fmt.Sprintf("mam%d", time.Now().UnixNano())
	c.Sendf("<iq type='set' id='%s' to='%s'><query xmlns='urn:xmpp:mam:2'/></iq>", id, roomJID)
	var b strings.Builder
	for {
		el := c.El()
		if el.Local == "iq" && el.Get("id") == id {
			if el.Get("type") != "result" {
				t.Fatalf("mam: %s", el)
			}
			return b.String()
		}
		if el.Child("urn:xmpp:mam:2", "result") != nil {
			b.WriteString(el.String())
		}
	}
}

// TestRetractAndModerate: XEP-0424 by the sender only, XEP-0425 by
// moderators only; the archive keeps a tombstone without the text.
func TestRetractAndModerate(t *testing.T) {
	d := start(t)
	alice, bob := login(t, d, "alice"), login(t, d, "bob")
	create(t, alice, room, "alice", "")
	join(t, bob, room, "bob", "")
	alice.Sync()
	say := func(c *modtest.Client, body string) string {
		c.Sendf("<message to='%s' type='groupchat'><body>%s</body></message>", room, body)
		m := c.Expect(body, isGroupchat(body))
		alice.Sync()
		bob.Sync()
		return stanzaIDOf(m)
	}
	oops := say(bob, "oops secret")
	// Someone else's message: forbidden.
	alice.Sendf("<message to='%s' type='groupchat'><retract xmlns='urn:xmpp:message-retract:1' id='%s'/><body>retracted</body></message>", room, oops)
	if e := alice.Expect("error", isErrorMsg); modtest.ErrCond(e) != "forbidden" {
		t.Fatalf("retracting another's message: %s", e)
	}
	bob.Sendf("<message to='%s' type='groupchat'><retract xmlns='urn:xmpp:message-retract:1' id='%s'/><body>retracted</body></message>", room, oops)
	alice.Expect("retraction", func(el *stream.Element) bool {
		r := el.Child("urn:xmpp:message-retract:1", "retract")
		return r != nil && r.Get("id") == oops
	})
	bad := say(bob, "bad words")
	if r := iq(t, bob, "set", room, "<moderate xmlns='urn:xmpp:message-moderate:1' id='"+bad+"'><retract xmlns='urn:xmpp:message-retract:1'/></moderate>"); modtest.ErrCond(r) != "forbidden" {
		t.Fatalf("participant moderates: %s", r)
	}
	if r := iq(t, alice, "set", room, "<moderate xmlns='urn:xmpp:message-moderate:1' id='"+bad+"'><retract xmlns='urn:xmpp:message-retract:1'/><reason>spam</reason></moderate>"); modtest.ErrCond(r) != "" {
		t.Fatalf("moderate: %s", r)
	}
	n := bob.Expect("moderation notice", func(el *stream.Element) bool {
		r := el.Child("urn:xmpp:message-retract:1", "retract")
		return r != nil && r.Get("id") == bad && r.Child("urn:xmpp:message-moderate:1", "moderated") != nil
	})
	if !strings.Contains(n.String(), room+"/alice") {
		t.Fatalf("notice does not say who: %s", n)
	}
	if r := iq(t, alice, "set", room, "<moderate xmlns='urn:xmpp:message-moderate:1' id='"+bad+"'><retract xmlns='urn:xmpp:message-retract:1'/></moderate>"); modtest.ErrCond(r) != "item-not-found" {
		t.Fatalf("moderating twice: %s", r)
	}
	arch := mamAll(t, bob, room)
	if strings.Contains(arch, "secret") || strings.Contains(arch, "bad words") {
		t.Fatalf("retracted text still in the archive: %s", arch)
	}
	if strings.Count(arch, "<retracted") != 2 {
		t.Fatalf("tombstones: %s", arch)
	}
}

// TestClubRooms: the default room has every account as a member; a
// circle's room lets in whom the admin pages add, and a member taken out
// leaves with 321.
func TestClubRooms(t *testing.T) {
	d := start(t)
	alice, bob := login(t, d, "alice"), login(t, d, "bob")
	everyone := muc.DefaultRoom + "@" + host
	self, _ := join(t, alice, everyone, "alice", "")
	if it := item(self); it.Get("affiliation") != "member" || codes(self)["201"] {
		t.Fatalf("default room self-presence: %s", self)
	}
	svc := muc.Of(d.Server)
	name := muc.CircleRoom("Family Smith")
	if name != muc.CircleRoom("Family Smith") || name == muc.CircleRoom("family smith") {
		t.Fatalf("circle room names: %q %q", name, muc.CircleRoom("family smith"))
	}
	if err := svc.EnsureRoom(name, "Family Smith", false); err != nil {
		t.Fatal(err)
	}
	circle := name + "@" + host
	if got := joinErr(t, bob, circle, "bob", ""); got != "registration-required" {
		t.Fatalf("non-member joins a circle's room: %s", got)
	}
	if err := svc.SetMember(name, "bob", true); err != nil {
		t.Fatal(err)
	}
	join(t, bob, circle, "bob", "")
	if err := svc.SetMember(name, "bob", false); err != nil {
		t.Fatal(err)
	}
	if p := bob.Expect("removed", modtest.IsPresence("unavailable", circle+"/bob")); !codes(p)["321"] {
		t.Fatalf("removal: %s", p)
	}
	if err := svc.DestroyRoom(name, "circle deleted"); err != nil {
		t.Fatal(err)
	}
	if r := iq(t, bob, "get", circle, "<query xmlns='http://jabber.org/protocol/disco#info'/>"); modtest.ErrCond(r) != "item-not-found" {
		t.Fatalf("circle room after delete: %s", r)
	}
}

// TestNickChangeAndTwoClients: a nick change is unavailable with 303 and
// the new nick, then available; a second client of the same member joins
// under the same nick without a conflict and both get the room's
// messages; another member cannot take the nick.
func TestNickChangeAndTwoClients(t *testing.T) {
	d := start(t)
	alice, bob := login(t, d, "alice"), login(t, d, "bob")
	phone := modtest.Login(t, d, "bob", "phone")
	phone.Send("<presence/>")
	phone.Sync()
	create(t, alice, room, "alice", "")
	join(t, bob, room, "bob", "")
	alice.Sync()
	bob.Sendf("<presence to='%s/Robert'/>", room)
	p := alice.Expect("303", modtest.IsPresence("unavailable", room+"/bob"))
	if !codes(p)["303"] || item(p).Get("nick") != "Robert" {
		t.Fatalf("nick change: %s", p)
	}
	alice.Expect("new nick", modtest.IsPresence("", room+"/Robert"))
	join(t, phone, room, "Robert", "")
	if got := joinErr(t, alice, room, "ROBERT", ""); got != "conflict" {
		// alice is an occupant already: this is her nick change, refused.
		t.Fatalf("alice taking bob's nick: %s", got)
	}
	alice.Sendf("<message to='%s' type='groupchat'><body>to both</body></message>", room)
	bob.Expect("bob's laptop", isGroupchat("to both"))
	phone.Expect("bob's phone", isGroupchat("to both"))
}

// TestRoomAvatar: owners set the room's vCard, others read it, its photo
// hash is in disco#info; a non-owner and an oversized vCard are refused.
func TestRoomAvatar(t *testing.T) {
	d := start(t)
	alice, bob := login(t, d, "alice"), login(t, d, "bob")
	create(t, alice, room, "alice", "")
	photo := base64.StdEncoding.EncodeToString([]byte("\x89PNG tiny avatar"))
	sum := sha1.Sum([]byte("\x89PNG tiny avatar"))
	vc := "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>" + photo + "</BINVAL></PHOTO></vCard>"
	if r := iq(t, bob, "set", room, vc); modtest.ErrCond(r) != "forbidden" {
		t.Fatalf("non-owner sets the avatar: %s", r)
	}
	big := "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>" + strings.Repeat("QUFB", 40<<10) + "</BINVAL></PHOTO></vCard>"
	if r := iq(t, alice, "set", room, big); modtest.ErrCond(r) != "not-acceptable" {
		t.Fatalf("oversized avatar: %s", r)
	}
	if r := iq(t, alice, "set", room, vc); modtest.ErrCond(r) != "" {
		t.Fatalf("owner sets the avatar: %s", r)
	}
	if r := iq(t, bob, "get", room, "<vCard xmlns='vcard-temp'/>"); !strings.Contains(r.String(), photo) {
		t.Fatalf("avatar read: %s", r)
	}
	info := iq(t, bob, "get", room, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	if !strings.Contains(info.String(), hex.EncodeToString(sum[:])) {
		t.Fatalf("avatar hash not in disco#info: %s", info)
	}
}

// TestRegisteredNick: a registered nickname is the member's alone, in any
// case or width; §7.12 tells the member its nick.
func TestRegisteredNick(t *testing.T) {
	d := start(t)
	alice, bob, carol := login(t, d, "alice"), login(t, d, "bob"), login(t, d, "carol")
	create(t, alice, room, "alice", "")
	reg := func(c *modtest.Client, nick string) string {
		return modtest.ErrCond(iq(t, c, "set", room, "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"+
			"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>"+
			"<field var='muc#register_roomnick'><value>"+nick+"</value></field></x></query>"))
	}
	if got := reg(bob, "Bobby"); got != "" {
		t.Fatalf("bob registers: %s", got)
	}
	if r := iq(t, bob, "get", room, "<query xmlns='jabber:iq:register'/>"); !strings.Contains(r.String(), "<username>Bobby</username>") {
		t.Fatalf("registration get: %s", r)
	}
	if got := reg(carol, "bobby"); got != "conflict" {
		t.Fatalf("carol registers bob's nick: %s", got)
	}
	if got := joinErr(t, carol, room, "ＢＯＢＢＹ", ""); got != "conflict" {
		t.Fatalf("carol joins as bob's registered nick: %s", got)
	}
	alice.Sendf("<presence to='%s/bobby'/>", room)
	if e := alice.Expect("nick change refused", modtest.IsPresence("error", room+"/bobby")); modtest.ErrCond(e) != "conflict" {
		t.Fatalf("alice changes to bob's nick: %s", e)
	}
	r := iq(t, bob, "get", room, "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>")
	if !strings.Contains(r.String(), "name='Bobby'") {
		t.Fatalf("x-roomuser-item: %s", r)
	}
	if self, _ := join(t, bob, room, "Bobby", ""); item(self).Get("affiliation") != "member" {
		t.Fatalf("registering made bob a member: %s", self)
	}
}

// TestRoomOrderUnderLoad: a burst of room messages, some archived (a
// body) and some not (a chat state), reaches every occupant, the sender
// included, in the order it was sent, with stanza-ids increasing (issue
// 12: room messages now wait for a shared commit before fan-out, and a
// chat state must not overtake the messages before it).
func TestRoomOrderUnderLoad(t *testing.T) {
	d := start(t)
	alice, bob := login(t, d, "alice"), login(t, d, "bob")
	create(t, alice, room, "alice", "")
	join(t, bob, room, "bob", "<history maxstanzas='0'/>")
	alice.Expect("bob's presence", func(el *stream.Element) bool { return el.Local == "presence" && el.Get("from") == room+"/bob" })
	const n = 300
	go func() {
		for i := range n {
			if i%7 == 3 {
				alice.Sendf("<message to='%s' type='groupchat' id='k%d'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", room, i)
			} else {
				alice.Sendf("<message to='%s' type='groupchat' id='k%d'><body>b%d</body></message>", room, i, i)
			}
		}
	}()
	for _, c := range []*modtest.Client{bob, alice} {
		last := ""
		for i := 0; i < n; {
			el := c.El()
			if el.Local != "message" || el.Get("type") != "groupchat" {
				continue
			}
			if el.Get("id") != fmt.Sprintf("k%d", i) {
				t.Fatalf("%s: message %d of the burst is %s", c.JID, i, el)
			}
			if sid := el.Child("urn:xmpp:sid:0", "stanza-id"); sid != nil {
				if id := sid.Get("id"); id <= last {
					t.Fatalf("%s: stanza-id %s after %s", c.JID, id, last)
				} else {
					last = id
				}
			} else if el.ChildText("jabber:client", "body") != "" {
				t.Fatalf("%s: archived message without stanza-id: %s", c.JID, el)
			}
			i++
		}
	}
}

// TestMessageBeforeLeave: a message an occupant sends just before leaving
// reaches the others before its leave (issue 12: messages are fanned out
// after a shared commit, and the leave waits for them rather than
// overtaking them).
func TestMessageBeforeLeave(t *testing.T) {
	d := start(t)
	alice, bob := login(t, d, "alice"), login(t, d, "bob")
	create(t, alice, room, "alice", "")
	join(t, bob, room, "bob", "<history maxstanzas='0'/>")
	for i := range 5 {
		alice.Sendf("<message to='%s' type='groupchat'><body>bye%d</body></message><presence to='%s/alice' type='unavailable'/>", room, i, room)
		for {
			el := bob.El()
			if el.Local == "presence" && el.Get("from") == room+"/alice" && el.Get("type") == "unavailable" {
				t.Fatalf("round %d: alice's leave reached bob before her last message", i)
			}
			if isGroupchat(fmt.Sprintf("bye%d", i))(el) {
				break
			}
		}
		bob.Expect("alice's leave", func(el *stream.Element) bool {
			return el.Local == "presence" && el.Get("from") == room+"/alice" && el.Get("type") == "unavailable"
		})
		join(t, alice, room, "alice", "<history maxstanzas='0'/>")
	}
}
