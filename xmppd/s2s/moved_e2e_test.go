//go:build e2e

package s2s_test

import (
	"testing"
	"time"
)

// XEP-0283 between two Hearths (issue 15: "the XEP-0283 flow between two
// Hearth instances over federation"): juliet moves from hearth2.test to
// julia@hearth.test; romeo (hearth.test, whose server fetches the old
// account's statement over federation) and carol (hearth2.test, whose
// request arrives over federation) are switched over by their servers
// (testdata/moved.py).
func TestMoveAcrossHearths(t *testing.T) {
	w := newWorld(t)
	h1 := w.start(t, "hearth.test", nil, nil)
	h2 := w.start(t, "hearth2.test", nil, nil)
	for _, a := range []struct {
		b    *box
		user string
	}{{h1, "romeo"}, {h1, "julia"}, {h2, "carol"}, {h2, "juliet"}} {
		if err := a.b.d.Store.CreateAccount(a.user, a.user+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	runPy(t, 90*time.Second, "moved.py", "--ca", caBundle(t, w.ca),
		"--client", h1.clientSpec("romeo"), "--client", h2.clientSpec("carol"),
		"--client", h2.clientSpec("juliet"), "--client", h1.clientSpec("julia"))
}
