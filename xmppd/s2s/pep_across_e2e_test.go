//go:build e2e

package s2s_test

import (
	"testing"
	"time"
)

// Issue 14, "everything routes across": PEP notifications to a remote
// contact (a nickname, as avatars and OMEMO device lists travel) and the
// archive of messages that came from another server
// (testdata/pep_mam_across.py).
func TestPEPAndArchiveAcross(t *testing.T) {
	w := newWorld(t)
	h1 := w.start(t, "hearth.test", nil, nil)
	h2 := w.start(t, "hearth2.test", nil, nil)
	runPy(t, 90*time.Second, "pep_mam_across.py", "--ca", caBundle(t, w.ca),
		"--client", h1.clientSpec("alice"), "--client", h2.clientSpec("bob"))
}
