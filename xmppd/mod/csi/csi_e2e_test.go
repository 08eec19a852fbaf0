//go:build e2e

package csi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// TestSlixmppPresenceChurn: slixmpp's xep_0352 plugin on alice, 20
// slixmpp contacts each changing presence 10 times. Active she gets all
// 200 changes; inactive, 21 stanzas in all: one presence per contact (the
// latest), sent just before the message that wakes her.
func TestSlixmppPresenceChurn(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	for i := range 20 {
		u := fmt.Sprintf("c%d", i)
		if err := d.Store.CreateAccount(u, u+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	out := xmpptest.Slixmpp(t, d, dir, "csi_churn.py", 150*time.Second)
	var active, inactive int
	for _, l := range strings.Split(string(out), "\n") {
		if _, err := fmt.Sscanf(l, "active %d inactive %d", &active, &inactive); err == nil {
			break
		}
	}
	t.Logf("stanzas delivered during the churn: active %d, inactive %d", active, inactive)
	if active != 200 || inactive != 21 {
		t.Fatalf("active %d (want 200), inactive %d (want 20 presences + 1 message)", active, inactive)
	}
}
