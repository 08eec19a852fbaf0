//go:build e2e

package s2s_test

import (
	"fmt"
	"testing"
	"time"
)

// Rooms across Hearth and Debian's prosody 0.12 (issue 14's "join a room
// on the other server"), as slixmpp's xep_0045 does it with its defaults
// (testdata/rooms_prosody.py): alice@prosody.test joins a room on
// groups.hearth.test where bob@hearth.test is, and bob joins a room on
// prosody's conference.prosody.test where alice is; each time both see
// the other's presence from the room and a group chat message each way.
func TestProsodyRoomsAcross(t *testing.T) {
	w := newWorld(t)
	pc2s := startProsody(t, w, w.ca, true)
	hearth := w.start(t, "hearth.test", nil, nil)
	runPy(t, 90*time.Second, "rooms_prosody.py", "--ca", caBundle(t, w.ca),
		"--client", fmt.Sprintf("alice@prosody.test:alice-pw:127.0.0.1:%d:SCRAM-SHA-1", pc2s),
		"--client", hearth.clientSpec("bob"),
		"--hearth-room", "fromprosody@groups.hearth.test", "--prosody-room", "fromhearth@conference.prosody.test")
	// The room's traffic went out on a stream of the service's own; the
	// component's streams both ways were authenticated for its name by
	// certificate (it is in prosody's: without it they fall back to
	// dialback).
	for _, want := range []string{
		`msg="s2s: connected out" domain=prosody.test from=groups.hearth.test auth=EXTERNAL`,
		`msg="s2s: connected out" domain=conference.prosody.test from=hearth.test auth=EXTERNAL`,
		`msg="s2s: peer authenticated" domain=conference.prosody.test auth=EXTERNAL`,
	} {
		if !hearth.log.has(want) {
			t.Errorf("log lacks %s", want)
		}
	}
}
