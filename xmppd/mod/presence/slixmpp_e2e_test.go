//go:build e2e

package presence_test

import (
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// TestSlixmppSubscribeOffline runs a real client library (Debian's
// python3-slixmpp) through the subscription handshake with a request and
// messages stored for an offline account, checking order and XEP-0203
// stamps.
func TestSlixmppSubscribeOffline(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	xmpptest.Slixmpp(t, d, dir, "subscribe_offline.py", 90*time.Second,
		"--alice", "alice-pw", "--bob", "bob-pw")
}
