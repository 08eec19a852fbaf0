//go:build e2e

package s2s_test

import (
	"testing"
	"time"
)

// Two Hearths, hearth.test and hearth2.test, as their members' slixmpp
// clients see them (testdata/across.py): messages and presence
// subscriptions both ways, a message to a remote member who is offline
// delivered at their next login, and a room on groups.hearth.test with an
// occupant from hearth2.test.
//
// Both daemons run in this process (each its own xmppd.Daemon, store,
// secret, listeners and certificate); they meet only over loopback TCP.
func TestHearthToHearth(t *testing.T) {
	w := newWorld(t)
	h1 := w.start(t, "hearth.test", nil, nil)
	h2 := w.start(t, "hearth2.test", nil, nil)
	if err := h2.d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	runPy(t, 90*time.Second, "across.py", "--ca", caBundle(t, w.ca),
		"--client", h1.clientSpec("alice"), "--client", h2.clientSpec("bob"), "--client", h2.clientSpec("carol"),
		"--room", "across@groups.hearth.test")
	for _, x := range []*box{h1, h2} {
		if !x.log.has("auth=EXTERNAL") {
			t.Errorf("%s: no link authenticated by certificate", x.domain)
		}
	}
	// The room's traffic went out on a stream of the service's own: one
	// it dialled, or (XEP-0288) hearth2.test's stream to it.
	if !h1.log.has(`msg="s2s: connected out" domain=hearth2.test from=groups.hearth.test`) &&
		!h1.log.has(`msg="s2s: sending on a bidirectional stream" domain=hearth2.test from=groups.hearth.test`) {
		t.Errorf("no stream from groups.hearth.test to hearth2.test")
	}
}
