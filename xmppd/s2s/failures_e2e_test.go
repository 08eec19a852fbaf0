//go:build e2e

package s2s_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/s2s"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// A real peer that was reachable goes away (its daemon stops, the link
// with it ends) and comes back a while later: what its members were sent
// meanwhile is queued, retried, and arrives in order.
func TestRealPeerDownAndBack(t *testing.T) {
	w := newWorld(t)
	h1 := w.start(t, "hearth.test", nil, func(c *s2s.Config) {
		c.RetryFor, c.RetryMin, c.RetryMax = time.Minute, 50*time.Millisecond, 300*time.Millisecond
	})
	h2 := w.start(t, "hearth2.test", nil, nil)
	alice, bob := h1.login(t, "alice"), h2.login(t, "bob")
	alice.Send("<message to='bob@hearth2.test' type='chat' id='up'><body>while up</body></message>")
	expect(t, bob, "the first message", message("alice@hearth.test/r", "bob@hearth2.test"))

	// hearth2.test goes down: its listeners close, the link ends.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h2.d.Shutdown(ctx); err != nil {
		t.Fatalf("stopping hearth2.test: %v", err)
	}
	// Sent once hearth.test has seen the link end. (Sent within
	// milliseconds of the peer's close, a message written into the
	// closing connection is now written again on the next link:
	// TestWrittenBeforePeerClose.)
	h1.waitLog(t, `msg="s2s: link ended by peer" domain=hearth2.test`, 10*time.Second)
	for i := range 3 {
		alice.Send(fmt.Sprintf("<message to='bob@hearth2.test' type='chat' id='q%d'><body>queued %d</body></message>", i, i))
	}
	// All three wait (alice's messages reach the queue one by one), and
	// "while up" again if the link ended within its confirmation window
	// (queue.go: at least once).
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, _ := h1.d.S2S().Queued()
		if n >= 3 && h1.log.has("s2s: retrying") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d stanzas queued while hearth2.test is down, want 3", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// It comes back (a new daemon for the domain, on another port, its
	// record replaced), bob logs in again.
	h2 = w.start(t, "hearth2.test", nil, nil)
	bob = h2.login(t, "bob")
	for i := 0; i < 3; {
		el := expect(t, bob, "a queued message", message("alice@hearth.test/r", "bob@hearth2.test"))
		got := el.ChildText(stream.NSClient, "body")
		if got == "while up" && i == 0 {
			continue // sent again, see above
		}
		if want := fmt.Sprintf("queued %d", i); got != want {
			t.Errorf("got %q, want %q (in order)", got, want)
		}
		i++
	}
	if n, _ := h1.d.S2S().Queued(); n != 0 {
		t.Errorf("%d stanzas still queued after delivery", n)
	}
}

// Our certificate names another domain, and prosody requires
// certificates (s2s_secure_auth): neither side accepts the other's
// stream. Each sender gets an error at once; nothing is delivered.
func TestWrongNameCertificate(t *testing.T) {
	w := newWorld(t)
	pc2s := startProsody(t, w, w.ca, true)
	// The default retry time (5 minutes): a refusal must not wait for it.
	hearth := w.startNamed(t, "hearth.test", []string{"wrong.test"}, nil)
	alice, bob := hearth.login(t, "alice"), hearth.login(t, "bob")

	// Ours to prosody: prosody refuses our certificate (stream error
	// not-authorized); alice gets the message back as an error at once.
	start := time.Now()
	alice.Send("<message to='alice@prosody.test' type='chat' id='out'><body>must not arrive</body></message>")
	el := expect(t, alice, "the bounce", func(el *stream.Element) bool { return el.Local == "message" && el.Get("id") == "out" })
	if el.Get("type") != "error" || errCond(el) != "remote-server-not-found" {
		t.Fatalf("not a remote-server-not-found error: %s", el)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusal bounced after %v", d)
	}
	t.Logf("our sender got %s after %v", errCond(el), time.Since(start).Round(time.Millisecond))

	// Prosody's to us: prosody finds our certificate wrong for
	// hearth.test and bounces to its member; bob gets nothing of it.
	out := runPy(t, 60*time.Second, "bounce.py", "--ca", caBundle(t, w.ca),
		"--client", fmt.Sprintf("alice@prosody.test:alice-pw:127.0.0.1:%d:SCRAM-SHA-1", pc2s), "--to", "bob@hearth.test")
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "OK") {
			t.Logf("prosody's sender got %s", strings.TrimPrefix(l, "OK "))
		}
	}
	// The first message bob sees must be this local one, sent after
	// prosody gave up.
	alice.Send("<message to='bob@hearth.test' type='chat' id='marker'><body>marker</body></message>")
	el = expect(t, bob, "a message", func(el *stream.Element) bool { return el.Local == "message" })
	if el.Get("id") != "marker" {
		t.Errorf("bob got %s", el)
	}
	if hearth.log.has(`msg="s2s: peer authenticated" domain=prosody.test`) || hearth.log.has(`msg="s2s: connected out" domain=prosody.test`) {
		t.Errorf("a stream with prosody.test was authenticated")
	}
}
