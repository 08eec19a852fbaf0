//go:build e2e

package blocking_test

import (
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// TestSlixmppBlocking: a real client library (Debian's python3-slixmpp,
// its xep_0191 plugin with defaults) on two devices of one account: a block
// made on one is pushed to the other, the blocked sender is refused and
// so is what alice sends him; unblocking lets him through again.
func TestSlixmppBlocking(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	xmpptest.Slixmpp(t, d, dir, "blocking.py", 90*time.Second,
		"--alice", "alice-pw", "--bob", "bob-pw")
}
