package smacks_test

import (
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// A message to the bare JID goes only to the resources with the highest
// priority. When such a resource dies without acknowledging it, the
// message must reach the others (or offline storage) — exactly once.
func TestRerouteBareMessage(t *testing.T) {
	for _, tc := range []struct {
		name           string
		phone, laptop  int
		laptopWantsOne bool // the copy comes from the reroute
	}{
		{"laptop lower priority: it gets the phone's unacked message", 5, 0, true},
		{"same priority: laptop already has it, no duplicate", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := xmpptest.Start(t, nil)
			phone := modtest.Login(t, d, "alice", "phone")
			laptop := modtest.Login(t, d, "alice", "laptop")
			bob := modtest.Login(t, d, "bob", "b")
			phone.Send("<enable xmlns='" + ns + "'/>")
			if el := phone.El(); el.Local != "enabled" {
				t.Fatal(el)
			}
			phone.Sendf("<presence><priority>%d</priority></presence>", tc.phone)
			laptop.Sendf("<presence><priority>%d</priority></presence>", tc.laptop)
			phone.Sync()
			laptop.Sync()
			bob.Sendf("<message to='alice@%s' type='chat' id='m1'><body>for alice</body></message>", xmpptest.Domain)
			phone.Expect("the message", func(el *stream.Element) bool { return el.Local == "message" })
			bob.Sync()
			// The phone dies without acknowledging anything.
			phone.Raw.Close()

			deadline := time.Now().Add(3 * time.Second)
			got := 0
			for time.Now().Before(deadline) {
				for _, el := range laptop.Sync() {
					if el.Local == "message" && el.ChildText("", "body") == "for alice" {
						got++
					}
				}
				if got > 0 && tc.laptopWantsOne {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			// Either way exactly one copy: from the reroute, or from
			// the original delivery to both top-priority resources.
			if got != 1 {
				t.Fatalf("laptop got the message %d times, want once", got)
			}
			if tc.laptopWantsOne {
				// No second copy. The phone's unavailable presence may
				// come after the rerouted message (the reroute runs as
				// the session ends): a loaded run got it here.
				for _, el := range laptop.Sync() {
					if el.Local == "message" {
						t.Fatalf("after the rerouted message: %s", el)
					}
				}
			}
		})
	}
}
