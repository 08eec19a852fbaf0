package csi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/csi"
	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	ns    = "urn:xmpp:csi:0"
	nsSM  = "urn:xmpp:sm:3"
	alice = "alice@" + xmpptest.Domain
)

// churn routes n presence updates from each of the given full JIDs to
// alice/a, as the server routes contacts' broadcasts.
func churn(d *xmppd.Daemon, froms []string, n int) {
	for i := range n {
		for _, f := range froms {
			d.Server.Route(stream.New(stream.NSClient, "presence", "from", f, "to", alice+"/a").
				Add(stream.New(stream.NSClient, "status").AddText(fmt.Sprint(i))))
		}
	}
}

func contacts(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("c%d@%s/phone", i, xmpptest.Domain))
	}
	return out
}

func sess(t *testing.T, d *xmppd.Daemon, user, res string) *session.Session {
	t.Helper()
	s := d.Server.Router.Session(user, res)
	if s == nil {
		t.Fatalf("no session %s/%s", user, res)
	}
	return s
}

func TestFeatureOffered(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	c.Auth("SCRAM-SHA-256", "alice", "alice-pw")
	if f := c.Open(); f.Child(ns, "csi") == nil {
		t.Fatalf("no csi feature: %s", f)
	}
}

// TestPresenceChurnHeld: 20 contacts each change presence 10 times while
// alice is inactive: she gets one presence per contact (the latest), and
// only when something important (here an iq result) goes to her.
func TestPresenceChurnHeld(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	a.Send("<inactive xmlns='" + ns + "'/>")
	a.Sync() // the nonza is handled before the sync's iq
	from := contacts(20)
	churn(d, from, 10)
	if n := csi.Held(sess(t, d, "alice", "a")); n != 20 {
		t.Fatalf("held %d stanzas, want 20 (one per contact)", n)
	}
	got := a.Sync()
	if len(got) != 20 {
		t.Fatalf("got %d stanzas before the iq result, want 20", len(got))
	}
	for i, el := range got {
		if el.Local != "presence" || el.Get("from") != from[i] || el.ChildText(stream.NSClient, "status") != "9" {
			t.Fatalf("stanza %d: %s (want the latest presence of %s)", i, el, from[i])
		}
	}
	// Active again: churn passes straight through.
	a.Send("<active xmlns='" + ns + "'/>")
	a.Quiet("nothing left held") // and the nonza was handled
	churn(d, from[:2], 3)
	if got := a.Sync(); len(got) != 6 {
		t.Fatalf("active: got %d stanzas, want 6", len(got))
	}
}

// TestImportantMessageFlushesInOrder: a message with a body sends what was
// held first, in arrival order (a replaced presence moves to where its
// latest version arrived).
func TestImportantMessageFlushesInOrder(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	b := modtest.Login(t, d, "bob", "b")
	a.Send("<inactive xmlns='" + ns + "'/>")
	a.Sync()
	to := alice + "/a"
	b.Sendf("<presence to='%s'><status>one</status></presence>", to)
	b.Sendf("<message to='%s' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", to)
	b.Sendf("<message to='%s' type='chat'><received xmlns='urn:xmpp:receipts' id='x'/></message>", to)
	b.Sendf("<presence to='%s'><status>two</status></presence>", to)
	b.Sendf("<message to='%s' type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>", to)
	b.Sync()
	if n := csi.Held(sess(t, d, "alice", "a")); n != 3 {
		t.Fatalf("held %d, want 3 (receipt, latest presence, latest chat state)", n)
	}
	b.Sendf("<message to='%s' type='chat'><body>hi</body></message>", to)
	var seq []string
	for len(seq) < 4 {
		el := a.El()
		switch {
		case el.Local == "presence":
			seq = append(seq, "presence:"+el.ChildText(stream.NSClient, "status"))
		case el.ChildText(stream.NSClient, "body") != "":
			seq = append(seq, "body:"+el.ChildText(stream.NSClient, "body"))
		case el.Child(nsReceipts, "received") != nil:
			seq = append(seq, "receipt")
		default:
			seq = append(seq, "state:"+el.FirstChild().Local)
		}
	}
	if want := "receipt presence:two state:paused body:hi"; strings.Join(seq, " ") != want {
		t.Fatalf("got %q, want %q", strings.Join(seq, " "), want)
	}
	a.Quiet("nothing held twice")
}

const nsReceipts = "urn:xmpp:receipts"

// TestActiveFlushes: <active/> sends what was held without anything else.
func TestActiveFlushes(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	a.Send("<inactive xmlns='" + ns + "'/>")
	a.Sync()
	churn(d, contacts(1), 1)
	a.Send("<active xmlns='" + ns + "'/>")
	if el := a.El(); el.Local != "presence" {
		t.Fatalf("after <active/>: %s", el)
	}
}

// TestOverflowFlushes: the hold-back queue is bounded; past MaxHeld it is
// sent without waiting for anything important.
func TestOverflowFlushes(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	a.Send("<inactive xmlns='" + ns + "'/>")
	a.Sync()
	churn(d, contacts(csi.MaxHeld+1), 1)
	for i := range csi.MaxHeld {
		if el := a.El(); el.Local != "presence" {
			t.Fatalf("stanza %d: %s", i, el)
		}
	}
	if n := csi.Held(sess(t, d, "alice", "a")); n != 1 {
		t.Fatalf("held %d after the overflow, want 1", n)
	}
}

// TestHeldNotCounted: stream management counts what was sent; a held
// stanza was not, so acknowledging it is acknowledging too much.
func TestHeldNotCounted(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	a.Send("<enable xmlns='" + nsSM + "'/>")
	if el := a.El(); el.Local != "enabled" {
		t.Fatal(el)
	}
	a.Send("<inactive xmlns='" + ns + "'/>")
	a.Sync() // one stanza sent: the iq result
	churn(d, contacts(3), 1)
	if n := csi.Held(sess(t, d, "alice", "a")); n != 3 {
		t.Fatalf("held %d, want 3", n)
	}
	a.Send("<a xmlns='" + nsSM + "' h='2'/>")
	a.StreamError("undefined-condition")
}

// TestHeldSurvivesResumption: held stanzas of a hibernating session are
// sent after resumption (XEP-0352: the state is not kept), after the
// stanzas resent for stream management.
func TestHeldSurvivesResumption(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	a.Send("<enable xmlns='" + nsSM + "' resume='true'/>")
	en := a.El()
	if en.Local != "enabled" {
		t.Fatal(en)
	}
	a.Send("<inactive xmlns='" + ns + "'/>")
	b := modtest.Login(t, d, "bob", "b")
	b.Sendf("<message to='%s/a' type='chat'><body>before</body></message>", alice)
	b.Sync()
	if el := a.El(); el.ChildText(stream.NSClient, "body") != "before" {
		t.Fatalf("got %s", el)
	}
	s := sess(t, d, "alice", "a")
	gen := s.Gen()
	a.Raw.Close()
	// The server notices the dead link when its reader fails.
	for deadline := time.Now().Add(10 * time.Second); !s.Detached(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) || s.Gen() != gen {
			t.Fatal("session did not hibernate")
		}
	}
	churn(d, contacts(2), 2)
	if n := csi.Held(s); n != 2 {
		t.Fatalf("held %d while hibernating, want 2", n)
	}
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	c.Auth("SCRAM-SHA-256", "alice", "alice-pw")
	c.Open()
	c.Send("<resume xmlns='" + nsSM + "' previd='" + en.Get("id") + "' h='0'/>")
	if el := c.El(); el.Local != "resumed" {
		t.Fatalf("resume: %s", el)
	}
	var got []string
	for len(got) < 3 {
		el := c.El()
		switch {
		case el.Local == "message":
			got = append(got, el.ChildText(stream.NSClient, "body"))
		case el.Local == "presence":
			got = append(got, el.Get("from"))
		}
	}
	want := []string{"before", contacts(2)[0], contacts(2)[1]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after resumption got %v, want %v", got, want)
	}
	if n := csi.Held(s); n != 0 {
		t.Fatalf("still held %d", n)
	}
}

// TestHeldRoutedAtEnd: nothing held is lost when the session ends: a held
// receipt goes to the account's other resource.
func TestHeldRoutedAtEnd(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	other := modtest.Login(t, d, "alice", "desk")
	other.Send("<presence/>")
	other.Expect("own presence", modtest.IsPresence("", alice+"/desk"))
	a.Send("<inactive xmlns='" + ns + "'/>")
	a.Sync()
	b := modtest.Login(t, d, "bob", "b")
	b.Sendf("<message to='%s/a' type='chat' id='r1'><received xmlns='urn:xmpp:receipts' id='x'/></message>", alice)
	b.Sync()
	s := sess(t, d, "alice", "a")
	if n := csi.Held(s); n != 1 {
		t.Fatalf("held %d, want 1", n)
	}
	a.Close()
	got := other.Expect("the held receipt", func(el *stream.Element) bool { return el.Local == "message" })
	if got.Get("id") != "r1" || got.Child(nsReceipts, "received") == nil {
		t.Fatalf("desk got %s", got)
	}
}

// TestByteBound: what is held is bounded in bytes too; a stanza too big
// to hold is sent at once, after what was held.
func TestByteBound(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	a.Send("<inactive xmlns='" + ns + "'/>")
	a.Sync()
	big := strings.Repeat("x", 20<<10)
	from := contacts(8)
	for _, f := range from[:7] {
		d.Server.Route(stream.New(stream.NSClient, "presence", "from", f, "to", alice+"/a").
			Add(stream.New(stream.NSClient, "status").AddText(big)))
	}
	// 6 × 20 KiB fit under MaxHeldBytes; the 7th sends those 6.
	for i := range 6 {
		if el := a.El(); el.Local != "presence" || el.Get("from") != from[i] {
			t.Fatalf("stanza %d: %.200s", i, el)
		}
	}
	s := sess(t, d, "alice", "a")
	if n := csi.Held(s); n != 1 {
		t.Fatalf("held %d after the byte bound, want 1", n)
	}
	d.Server.Route(stream.New(stream.NSClient, "presence", "from", from[7], "to", alice+"/a").
		Add(stream.New(stream.NSClient, "status").AddText(strings.Repeat("y", csi.MaxHeldBytes/4+1))))
	for _, want := range from[6:8] {
		if el := a.El(); el.Local != "presence" || el.Get("from") != want {
			t.Fatalf("want presence of %s, got %.200s", want, el)
		}
	}
	if n := csi.Held(s); n != 0 {
		t.Fatalf("held %d, want 0", n)
	}
}

// TestGroupChatHeldUnlessMention: room chatter waits; a line naming the
// user sends it all.
func TestGroupChatHeldUnlessMention(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	a.Send("<inactive xmlns='" + ns + "'/>")
	a.Sync()
	room := "club@groups." + xmpptest.Domain
	say := func(body string) {
		d.Server.Route(stream.New(stream.NSClient, "message", "type", "groupchat", "from", room+"/bob", "to", alice+"/a").
			Add(stream.New(stream.NSClient, "body").AddText(body)))
	}
	say("lunch?")
	say("pizza")
	if n := csi.Held(sess(t, d, "alice", "a")); n != 2 {
		t.Fatalf("held %d group chat lines, want 2", n)
	}
	say("Alice, are you coming?")
	for _, want := range []string{"lunch?", "pizza", "Alice, are you coming?"} {
		if el := a.El(); el.ChildText(stream.NSClient, "body") != want {
			t.Fatalf("want %q, got %s", want, el)
		}
	}
}

// TestCarbonOfNoiseHeld: a carbon copy (XEP-0280) is noise when what it
// carries is: a chat state's copy waits, a message's copy goes at once.
func TestCarbonOfNoiseHeld(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	a.Send("<inactive xmlns='" + ns + "'/>")
	a.Sync()
	carbon := func(inner *stream.Element) *stream.Element {
		return stream.New(stream.NSClient, "message", "type", "chat", "from", alice, "to", alice+"/a").Add(
			stream.New("urn:xmpp:carbons:2", "received").Add(
				stream.New("urn:xmpp:forward:0", "forwarded").Add(inner)))
	}
	d.Server.Route(carbon(stream.New(stream.NSClient, "message", "type", "chat", "from", "bob@"+xmpptest.Domain+"/b", "to", alice+"/desk").
		Add(stream.New("http://jabber.org/protocol/chatstates", "composing"))))
	if n := csi.Held(sess(t, d, "alice", "a")); n != 1 {
		t.Fatalf("held %d, want the chat state's carbon", n)
	}
	d.Server.Route(carbon(stream.New(stream.NSClient, "message", "type", "chat", "from", "bob@"+xmpptest.Domain+"/b", "to", alice+"/desk").
		Add(stream.New(stream.NSClient, "body").AddText("hi"))))
	for _, want := range []string{"composing", "body"} {
		el := a.El()
		if !strings.Contains(el.String(), "<"+want) {
			t.Fatalf("want the %s carbon, got %s", want, el)
		}
	}
}
