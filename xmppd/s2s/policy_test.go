package s2s_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/s2s"
)

// setPolicy saves fed as b's federation section and applies it to the
// running server, as the admin page's save does.
func (b *box) setPolicy(t *testing.T, fed config.Federation) {
	t.Helper()
	c := config.Default()
	c.Domain, c.Federation = b.domain, fed
	if err := config.Save(b.state.Config(), c); err != nil {
		t.Fatal(err)
	}
	now, err := b.d.ApplyFederation()
	if err != nil || !now {
		t.Fatalf("%s: apply the federation policy: now %v, err %v", b.domain, now, err)
	}
}

// bounced waits for the error answer to the stanza with id and returns its
// condition; any message not an error fails the test if from is its
// sender's prefix (a stanza that must not arrive).
func bounced(t *testing.T, c *xmpptest.Client, id, from string) string {
	t.Helper()
	for range 100 {
		el := c.El()
		if el.Local == "message" && el.Get("type") != "error" && strings.HasPrefix(el.Get("from"), from) {
			t.Fatalf("arrived although the policy refuses it: %s", el)
		}
		if el.Get("id") == id && el.Get("type") == "error" {
			return errCond(el)
		}
	}
	t.Fatalf("no bounce for %s", id)
	return ""
}

// links counts the TCP connections between a and b (to either's s2s
// ports).
func links(t *testing.T, a, b *box) int {
	return established(t, append(a.s2sPorts(), b.s2sPorts()...)...)
}

// say sends a chat message with id from c to to.
func say(c *xmpptest.Client, to, id string) {
	c.Send("<message to='" + to + "' type='chat' id='" + id + "'><body>" + id + "</body></message>")
}

// talking sets up a and b with links both ways (a message each way
// arrived; bFirst: b.test opened the stream, which a.test answers on,
// else a.test did), and a.test's alice with a message queued for
// dead.test (a domain whose server does not answer, tried again in 30 s).
// The links are quiet when it returns: what was written on them is
// confirmed (queue.go: its records are gone), so no timer of a queue wakes
// it — only a policy change can close them.
func talking(t *testing.T, w *world, bFirst bool) (a, b *box, alice, bob *xmpptest.Client) {
	t.Helper()
	w.deadPort(t, "dead.test")
	a = w.start(t, "a.test", nil, func(c *s2s.Config) {
		c.RetryFor, c.RetryMin, c.RetryMax = time.Minute, 30*time.Second, 30*time.Second
	})
	b = w.start(t, "b.test", nil, nil)
	alice, bob = a.login(t, "alice"), b.login(t, "bob")
	ab := func() {
		say(alice, "bob@b.test", "ab")
		expect(t, bob, "alice's message", message("alice@a.test/r", "bob@b.test"))
	}
	if !bFirst {
		ab()
	}
	say(bob, "alice@a.test", "ba")
	expect(t, alice, "bob's message", message("bob@b.test/r", "alice@a.test"))
	if bFirst {
		ab()
	}
	say(alice, "carol@dead.test", "queued")
	waitFor(t, "the message to dead.test retried", 10*time.Second, func() bool { return a.log.has("s2s: retrying") })
	for _, x := range []*box{a, b} {
		waitFor(t, x.domain+"'s messages confirmed", 10*time.Second, func() bool {
			for _, r := range queuedRecords(t, x.d.Store) {
				if r.Remote == "a.test" || r.Remote == "b.test" {
					return false
				}
			}
			return true
		})
	}
	if n := links(t, a, b); n == 0 {
		t.Fatal("no link between a.test and b.test")
	}
	return a, b, alice, bob
}

// refused checks what a policy that refuses b.test and dead.test on
// a.test does to the links and queues open before it applied.
func refused(t *testing.T, a, b *box, alice, bob *xmpptest.Client) {
	t.Helper()
	// The queued message bounces at once (not after the minute of
	// retrying), with the policy's error.
	if cond := bounced(t, alice, "queued", "carol@dead.test"); cond != "not-allowed" {
		t.Errorf("the queued message to dead.test bounced %q, want not-allowed", cond)
	}
	// The links between the two close, both directions.
	waitFor(t, "the links between a.test and b.test closed", 10*time.Second, func() bool { return links(t, a, b) == 0 })
	// bob's next message does not reach alice: his server learns that
	// a.test refuses it and tells him.
	say(bob, "alice@a.test", "after")
	if cond := bounced(t, bob, "after", "alice@a.test"); cond == "" {
		t.Error("bob's message bounced without a condition")
	}
	// alice's session has nothing of his: her ping's answer comes first.
	alice.Send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el := alice.El()
		if el.Local == "message" && strings.HasPrefix(el.Get("from"), "bob@b.test") {
			t.Fatalf("alice got bob's message: %s", el)
		}
		if el.Get("id") == "sync" {
			break
		}
	}
	// And what alice sends to b.test bounces too.
	say(alice, "bob@b.test", "to-b")
	if cond := bounced(t, alice, "to-b", "bob@b.test"); cond != "not-allowed" {
		t.Errorf("alice's message to b.test bounced %q, want not-allowed", cond)
	}
}

// A domain the admin blocks while links to it are open: they close both
// ways, what waits for a blocked domain bounces at once (not-allowed), and
// a message from the blocked domain no longer arrives. Before, the policy
// was asked only when queueing and at authentication: the open links kept
// carrying stanzas both ways, and the queue kept retrying.
func TestPolicyBlockApplies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bFirst bool
	}{{"a.test dialled", false}, {"b.test dialled", true}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			a, b, alice, bob := talking(t, w, tc.bFirst)
			a.setPolicy(t, config.Federation{Block: []string{"b.test", "dead.test"}})
			refused(t, a, b, alice, bob)
			// c.test, not blocked, is still talked to.
			c := w.start(t, "c.test", nil, nil)
			cbob := c.login(t, "bob")
			say(alice, "bob@c.test", "to-c")
			expect(t, cbob, "alice's message", message("alice@a.test/r", "bob@c.test"))
		})
	}
}

// A peer's own stream (no bidi, authenticated by certificate) from a
// domain blocked while it is open ends with policy-violation.
func TestPolicyClosesInbound(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", nil, nil)
	alice := a.login(t, "alice")
	p := bidiPeer(t, w, a, alice, false, true)
	a.setPolicy(t, config.Federation{Block: []string{"peer.test"}})
	p.StreamError("policy-violation")
}

// A stanza from a domain the policy refuses, on a stream authenticated
// before, is not routed even before PolicyChanged closes the stream (the
// moment between the admin's save and the close, or a stream that
// authenticated while PolicyChanged ran): the stream ends instead.
func TestPolicyPerStanza(t *testing.T) {
	w := newWorld(t)
	var block atomic.Bool
	a := w.start(t, "a.test", nil, func(c *s2s.Config) {
		c.Policy = func(d string) bool { return !(block.Load() && d == "peer.test") }
	})
	alice := a.login(t, "alice")
	p := bidiPeer(t, w, a, alice, false, true)
	block.Store(true) // and no PolicyChanged
	p.Send("<message from='x@peer.test' to='alice@a.test/r' type='chat' id='late'><body>late</body></message>")
	p.StreamError("policy-violation")
	alice.Send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
	for {
		el := alice.El()
		if el.Local == "message" && strings.HasPrefix(el.Get("from"), "x@peer.test") {
			t.Fatalf("alice got the blocked domain's message: %s", el)
		}
		if el.Get("id") == "sync" {
			break
		}
	}
}

// Federation turned off while links are open: the same as blocking every
// domain.
func TestPolicyOffApplies(t *testing.T) {
	w := newWorld(t)
	a, b, alice, bob := talking(t, w, true)
	a.setPolicy(t, config.Federation{Off: true})
	refused(t, a, b, alice, bob)
}

// Federation off in the config when the server starts, then turned on on
// the admin page: messages cross both ways at once. Before, federation
// was not started at all when off (no listener, no queue), and turning it
// on waited for the next start of xmppd.
func TestPolicyOnApplies(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", &config.Federation{Off: true}, nil)
	b := w.start(t, "b.test", nil, nil)
	alice, bob := a.login(t, "alice"), b.login(t, "bob")
	// Off: nothing crosses, either way, and both senders learn it.
	say(alice, "bob@b.test", "off-ab")
	if cond := bounced(t, alice, "off-ab", "bob@b.test"); cond != "not-allowed" {
		t.Errorf("alice's message while off bounced %q, want not-allowed", cond)
	}
	say(bob, "alice@a.test", "off-ba")
	if cond := bounced(t, bob, "off-ba", "alice@a.test"); cond != "remote-server-not-found" {
		t.Errorf("bob's message while a.test is off bounced %q, want remote-server-not-found", cond)
	}
	if !a.log.has("policy-violation") {
		t.Error("a.test did not refuse b.test's stream with policy-violation")
	}
	a.setPolicy(t, config.Federation{})
	say(alice, "bob@b.test", "on-ab")
	if el := expect(t, bob, "alice's message", message("alice@a.test/r", "bob@b.test")); el.Get("id") != "on-ab" {
		t.Errorf("bob got %s", el)
	}
	say(bob, "alice@a.test", "on-ba")
	if el := expect(t, alice, "bob's message", message("bob@b.test/r", "alice@a.test")); el.Get("id") != "on-ba" {
		t.Errorf("alice got %s", el)
	}
}
