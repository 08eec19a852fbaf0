//go:build e2e

package s2s_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/s2s"
)

// prosodyS2SPort is the port prosody.test's SRV record names.
func prosodyS2SPort(t *testing.T, w *world) int {
	t.Helper()
	_, srvs, err := s2s.Resolver(w.dns.Addr).LookupSRV(context.Background(), "xmpp-server", "tcp", "prosody.test")
	if err != nil || len(srvs) == 0 {
		t.Fatalf("prosody.test's SRV record: %v", err)
	}
	return int(srvs[0].Port)
}

// XEP-0288 with Debian's prosody 0.12 (mod_s2s_bidi on): whichever side
// speaks first, messages and presence subscriptions both ways (federate.py)
// travel over one TCP connection — the kernel's count of established
// connections to either server's s2s ports is 1 (2 without bidi: one per
// direction).
func TestProsodyBidi(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hearthFirst bool
		secure      bool
	}{
		{"prosody opens, certificates", false, true},
		{"hearth opens, certificates", true, true},
		// Dialback: each side verifies the other's key on a connection
		// of its own (the connect-back), which ends once answered.
		{"prosody opens, dialback", false, false},
		// Not "hearth opens, dialback": prosody 0.12 verifies our key on
		// a new stream of its own to us (as XEP-0220 has it), keeps that
		// stream as its route to hearth.test, and so never writes on
		// ours (mod_s2s takes a bidi stream as a route only when it has
		// none): two connections, each carrying one direction (seen
		// in prosody's log; our side asks for and offers bidi on both).
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			ca := w.ca
			var tune func(*s2s.Config)
			var cas []*s2s.TestCA
			if !tc.secure {
				ca = s2s.NewCA(t, t.TempDir()) // a CA we do not trust
				cas = append(cas, ca)
				tune = func(c *s2s.Config) { c.NoClientCert = true }
			}
			pc2s := startProsody(t, w, ca, tc.secure, `VirtualHost "prosody.test" { modules_enabled = { "s2s_bidi" } }`)
			hearth := w.start(t, "hearth.test", nil, tune)
			start := time.Now()
			clients := []string{"--client", fmt.Sprintf("alice@prosody.test:alice-pw:127.0.0.1:%d:SCRAM-SHA-1", pc2s), "--client", hearth.clientSpec("bob")}
			if tc.hearthFirst {
				clients = []string{clients[0], clients[3], clients[2], clients[1]}
			}
			runPy(t, time.Minute, "federate.py", append([]string{"--ca", caBundle(t, append(cas, w.ca)...)}, clients...)...)
			ports := append(hearth.s2sPorts(), prosodyS2SPort(t, w))
			// The dialback connect-backs may still be closing.
			deadline := time.Now().Add(10 * time.Second)
			for established(t, ports...) != 1 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if n := established(t, ports...); n != 1 {
				t.Fatalf("%d TCP connections between hearth.test and prosody.test, want 1", n)
			}
			t.Logf("%s: federate.py %v, one connection", tc.name, time.Since(start).Round(time.Millisecond))
			if tc.hearthFirst {
				auth := map[bool]string{true: "EXTERNAL", false: "dialback"}[tc.secure]
				if !hearth.log.has(`msg="s2s: connected out" domain=prosody.test from=hearth.test auth=` + auth + ` bidi=true`) {
					t.Error("our stream to prosody not bidirectional")
				}
				if hearth.log.has(`msg="s2s: peer authenticated" domain=prosody.test`) {
					t.Error("prosody opened a stream of its own")
				}
			} else {
				if !hearth.log.has(`msg="s2s: bidirectional stream" domain=prosody.test from=hearth.test`) ||
					!hearth.log.has(`msg="s2s: sending on a bidirectional stream" domain=prosody.test from=hearth.test`) {
					t.Error("we did not answer on prosody's stream")
				}
				if hearth.log.has(`msg="s2s: connected out" domain=prosody.test`) {
					t.Error("we dialled prosody")
				}
			}
		})
	}
}

// XEP-0288 between two Hearths as their members' slixmpp clients see them
// (testdata/across.py: messages, subscriptions, offline delivery, a room
// on groups.hearth.test with an occupant from hearth2.test): one TCP
// connection per pair of domains that talk — hearth.test with
// hearth2.test, groups.hearth.test with hearth2.test — not one per
// direction (4 without bidi).
func TestHearthBidi(t *testing.T) {
	w := newWorld(t)
	h1 := w.start(t, "hearth.test", nil, nil)
	h2 := w.start(t, "hearth2.test", nil, nil)
	if err := h2.d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	runPy(t, 90*time.Second, "across.py", "--ca", caBundle(t, w.ca),
		"--client", h1.clientSpec("alice"), "--client", h2.clientSpec("bob"), "--client", h2.clientSpec("carol"),
		"--room", "across@groups.hearth.test")
	ports := append(h1.s2sPorts(), h2.s2sPorts()...)
	if n := established(t, ports...); n != 2 {
		t.Fatalf("%d TCP connections between the Hearths, want 2 (one per domain pair)", n)
	}
	t.Logf("across.py %v over 2 connections", time.Since(start).Round(time.Millisecond))
	for _, x := range []*box{h1, h2} {
		if !x.log.has("sending on a bidirectional stream") {
			t.Errorf("%s never answered on its peer's stream", x.domain)
		}
	}
}
