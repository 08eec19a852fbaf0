//go:build e2e

package carbons_test

import (
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// TestSlixmppCarbons: a real client library (Debian's python3-slixmpp,
// its xep_0280 plugin with defaults) on two devices of one account: each
// sees the messages the other sent and received; a private one is not
// copied.
func TestSlixmppCarbons(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	xmpptest.Slixmpp(t, d, dir, "carbons.py", 90*time.Second,
		"--alice", "alice-pw", "--bob", "bob-pw")
}
