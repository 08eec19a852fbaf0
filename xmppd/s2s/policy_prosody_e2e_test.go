//go:build e2e

package s2s_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Debian's prosody, federating with us both ways, is blocked on the admin
// page while its streams are open: both close (ours to it with
// policy-violation, its to us too), prosody's member's next message
// bounces back to her and never reaches ours, and ours to prosody bounces
// not-allowed. Before, the open streams kept carrying stanzas until idle.
func TestProsodyBlockedAtRuntime(t *testing.T) {
	w := newWorld(t)
	pc2s := startProsody(t, w, w.ca, true)
	hearth := w.start(t, "hearth.test", nil, nil)
	federate(t, w, hearth, pc2s)
	hearth.setPolicy(t, config.Federation{Block: []string{"prosody.test"}})
	hearth.waitLog(t, `msg="s2s: link closed by the federation policy" domain=prosody.test`, 10*time.Second)
	hearth.waitLog(t, `msg="s2s: inbound stream closed by the federation policy" domain=prosody.test`, 10*time.Second)

	alice, bob := hearth.login(t, "alice"), hearth.login(t, "bob")
	start := time.Now()
	out := runPy(t, 60*time.Second, "bounce.py", "--ca", caBundle(t, w.ca),
		"--client", fmt.Sprintf("alice@prosody.test:alice-pw:127.0.0.1:%d:SCRAM-SHA-1", pc2s), "--to", "bob@hearth.test")
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "OK") {
			t.Logf("prosody's sender got %s after %v", strings.TrimPrefix(l, "OK "), time.Since(start).Round(time.Millisecond))
		}
	}
	// The first message bob sees is this local one, sent after prosody
	// gave up.
	alice.Send("<message to='bob@hearth.test' type='chat' id='marker'><body>marker</body></message>")
	if el := expect(t, bob, "a message", func(el *stream.Element) bool { return el.Local == "message" }); el.Get("id") != "marker" {
		t.Errorf("bob got %s", el)
	}
	alice.Send("<message to='alice@prosody.test' type='chat' id='out'><body>must not arrive</body></message>")
	el := expect(t, alice, "the bounce", func(el *stream.Element) bool { return el.Local == "message" && el.Get("id") == "out" })
	if el.Get("type") != "error" || errCond(el) != "not-allowed" {
		t.Errorf("ours to prosody: %s", el)
	}
}
