package carbons_test

import (
	"slices"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/carbons"
	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	ns  = carbons.NS
	fwd = "urn:xmpp:forward:0"
)

// online logs user in with resource res, sends available presence with
// prio and, if carbons, enables carbons; it returns once the setup's
// echoes are read.
func online(t *testing.T, d *xmppd.Daemon, user, res string, prio int, enable bool) *modtest.Client {
	t.Helper()
	c := modtest.Login(t, d, user, res)
	if enable {
		c.Send("<iq type='set' id='en'><enable xmlns='" + ns + "'/></iq>")
		if r := c.Expect("enable result", func(el *stream.Element) bool { return el.Local == "iq" && el.Get("id") == "en" }); r.Get("type") != "result" {
			t.Fatalf("enable: %s", r)
		}
	}
	c.Sendf("<presence><priority>%d</priority></presence>", prio)
	c.Sync()
	return c
}

// carbon checks that el is a carbon of direction dir for c and returns
// the forwarded message.
func carbon(t *testing.T, c *modtest.Client, el *stream.Element, dir string) *stream.Element {
	t.Helper()
	w := el.Child(ns, dir)
	if el.Local != "message" || w == nil {
		t.Fatalf("%s: want a <%s/> carbon, got %s", c.JID, dir, el)
	}
	if el.Get("to") != c.JID || el.Get("from") != userBare(c.JID) {
		t.Fatalf("%s: carbon addressed from %q to %q", c.JID, el.Get("from"), el.Get("to"))
	}
	f := w.Child(fwd, "forwarded")
	if f == nil || f.Child(stream.NSClient, "message") == nil {
		t.Fatalf("%s: carbon without forwarded message: %s", c.JID, el)
	}
	return f.Child(stream.NSClient, "message")
}

// drain reads what logging in the others caused (their presence).
func drain(cs ...*modtest.Client) {
	for _, c := range cs {
		c.Sync()
	}
}

func userBare(full string) string {
	for i := range full {
		if full[i] == '/' {
			return full[:i]
		}
	}
	return full
}

func isMsg(id string) func(*stream.Element) bool {
	return func(el *stream.Element) bool { return el.Local == "message" && el.Get("id") == id }
}

func isCarbon(el *stream.Element) bool {
	return el.Local == "message" && (el.Child(ns, "sent") != nil || el.Child(ns, "received") != nil)
}

func TestAdvertised(t *testing.T) {
	d := xmpptest.Start(t, nil)
	f := d.Server.Features(server.ToServer)
	for _, want := range []string{carbons.NS, carbons.NSRules} {
		if !slices.Contains(f, want) {
			t.Errorf("%s not advertised: %v", want, f)
		}
	}
}

// TestSentAndReceived: two carbons-enabled resources of one account see
// both sides of a conversation whichever of them takes part; a resource
// without carbons sees nothing extra.
func TestSentAndReceived(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a1 := online(t, d, "alice", "one", 0, true)
	a2 := online(t, d, "alice", "two", 0, true)
	a3 := online(t, d, "alice", "plain", 0, false)
	b := online(t, d, "bob", "b", 0, false)
	drain(a1, a2, a3, b)

	// Sent from one: two gets a <sent/> copy, one and plain get nothing.
	a1.Send("<message to='bob@example.test' type='chat' id='s1'><body>hi bob</body></message>")
	b.Expect("message to bob", isMsg("s1"))
	m := carbon(t, a2, a2.Expect("sent carbon", isCarbon), "sent")
	if m.Get("id") != "s1" || m.Get("from") != "alice@example.test/one" || m.Get("to") != "bob@example.test" || m.ChildText(stream.NSClient, "body") != "hi bob" {
		t.Fatalf("forwarded %s", m)
	}
	a1.Quiet("the sender gets no copy of its own message")
	a3.Quiet("a resource without carbons gets no copy")

	// Received at one's full JID: two gets a <received/> copy.
	b.Send("<message to='alice@example.test/one' type='chat' id='r1'><body>hi alice</body></message>")
	a1.Expect("message at one", isMsg("r1"))
	m = carbon(t, a2, a2.Expect("received carbon", isCarbon), "received")
	if m.Get("id") != "r1" || m.Get("from") != "bob@example.test/b" {
		t.Fatalf("forwarded %s", m)
	}
	a1.Quiet("the recipient gets only the original")
	a3.Quiet("no copy without carbons")

	// Normal with a body counts; a bare JID reaches all three (equal
	// priority), so nobody needs a copy.
	b.Send("<message to='alice@example.test' id='r2'><body>to all</body></message>")
	for _, c := range []*modtest.Client{a1, a2, a3} {
		c.Expect("bare message", isMsg("r2"))
		c.Quiet("delivered once, no copy")
	}
}

// TestBareToLowerPriority: a message to the bare JID goes to the highest
// priority; the other carbons-enabled resource gets a copy.
func TestBareToLowerPriority(t *testing.T) {
	d := xmpptest.Start(t, nil)
	hi := online(t, d, "alice", "hi", 5, true)
	lo := online(t, d, "alice", "lo", 1, true)
	b := online(t, d, "bob", "b", 0, false)
	drain(hi, lo, b)
	b.Send("<message to='alice@example.test' type='chat' id='x'><body>which</body></message>")
	hi.Expect("original", isMsg("x"))
	if m := carbon(t, lo, lo.Expect("copy", isCarbon), "received"); m.Get("id") != "x" {
		t.Fatalf("forwarded %s", m)
	}
	hi.Quiet("one copy only")
	lo.Quiet("one copy only")
}

// TestNotCopied: private, no-copy, group chat, MUC private messages,
// headlines, bodiless normal messages and unrelated errors are not
// copied; the recipient's copy of a private message loses <private/>.
func TestNotCopied(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a1 := online(t, d, "alice", "one", 0, true)
	a2 := online(t, d, "alice", "two", 0, true)
	b := online(t, d, "bob", "b", 0, false)
	drain(a1, a2, b)
	for i, body := range []string{
		"<message to='%s' type='chat' id='n%d'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>",
		"<message to='%s' type='chat' id='n%d'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>",
		"<message to='%s' type='chat' id='n%d'><body>x</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>",
		"<message to='%s' type='headline' id='n%d'><body>x</body></message>",
		"<message to='%s' id='n%d'><subject>no body</subject></message>",
		"<message to='%s' type='error' id='n%d'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
	} {
		// Sent by alice's first resource …
		a1.Sendf(body, "bob@example.test/b", i)
		// … and received at it from bob.
		b.Sendf(body, "alice@example.test/one", i+100)
		if i < 3 {
			got := b.Expect("sent message", isMsg(fmtID(i)))
			if got.Child(ns, "private") != nil {
				t.Errorf("recipient got <private/>: %s", got)
			}
			a1.Expect("received message", isMsg(fmtID(i+100)))
		}
	}
	b.Sync()
	a1.Sync()
	a2.Quiet("nothing to copy")
}

func fmtID(i int) string { return "n" + strconv.Itoa(i) }

// iq sends an iq and returns its answer.
func iq(c *modtest.Client, typ, to, payload string) *stream.Element {
	c.T.Helper()
	id := "q" + strconv.FormatUint(seq.Add(1), 10)
	if to != "" {
		to = " to='" + to + "'"
	}
	c.Send("<iq type='" + typ + "' id='" + id + "'" + to + ">" + payload + "</iq>")
	return c.Expect("answer "+id, func(el *stream.Element) bool { return el.Local == "iq" && el.Get("id") == id })
}

var seq atomic.Uint64

// TestErrorForCopiedMessage: an error answering a message that was
// copied is copied too (the other devices learn it failed).
func TestErrorForCopiedMessage(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a1 := online(t, d, "alice", "one", 0, true)
	a2 := online(t, d, "alice", "two", 0, true)
	b := online(t, d, "bob", "b", 0, false)
	drain(a1, a2, b)
	a1.Send("<message to='bob@example.test/b' type='chat' id='e1'><body>x</body></message>")
	b.Expect("message", isMsg("e1"))
	carbon(t, a2, a2.Expect("sent copy", isCarbon), "sent")
	b.Send("<message to='alice@example.test/one' type='error' id='e1'><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
	a1.Expect("error", isMsg("e1"))
	if m := carbon(t, a2, a2.Expect("error copy", isCarbon), "received"); m.Get("type") != "error" || m.Get("id") != "e1" {
		t.Fatalf("forwarded %s", m)
	}
	b.Send("<message to='alice@example.test/one' type='error' id='other'><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
	a1.Expect("error", isMsg("other"))
	a2.Quiet("an error for no copied message is not copied")
}

// TestDisable: after <disable/> a resource gets no more copies;
// enabling twice is no error; another account's carbons cannot be
// switched.
func TestDisable(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a1 := online(t, d, "alice", "one", 0, true)
	a2 := online(t, d, "alice", "two", 0, true)
	b := online(t, d, "bob", "b", 0, false)
	if r := iq(a2, "set", "", "<enable xmlns='"+ns+"'/>"); r.Get("type") != "result" {
		t.Fatalf("second enable: %s", r)
	}
	if r := iq(a2, "set", "bob@example.test", "<enable xmlns='"+ns+"'/>"); modtest.ErrCond(r) != "not-allowed" {
		t.Fatalf("enable for another account: %s", r)
	}
	if r := iq(a2, "set", "", "<disable xmlns='"+ns+"'/>"); r.Get("type") != "result" {
		t.Fatalf("disable: %s", r)
	}
	a1.Send("<message to='bob@example.test' type='chat' id='d1'><body>x</body></message>")
	b.Expect("message", isMsg("d1"))
	a2.Quiet("disabled: no copy")
}
