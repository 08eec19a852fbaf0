//go:build e2e

package private_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/private"
)

// TestSlixmppKeyLimit: a real client (Debian's python3-slixmpp, XEP-0049
// plugin) fills private storage up to the per-account key limit, gets
// resource-constraint for one more namespace, clears one and stores it.
func TestSlixmppKeyLimit(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	xmpptest.Slixmpp(t, d, dir, "quota.py", 90*time.Second,
		"--password", "alice-pw", "--keys", strconv.Itoa(private.MaxKeys), "--per-set", strconv.Itoa(private.MaxPerSet))
	u, err := d.Store.Usage("alice")
	if err != nil || u[private.Kind].Items != private.MaxKeys {
		t.Fatalf("alice's private usage %v (%v), want %d keys", u, err, private.MaxKeys)
	}
}
