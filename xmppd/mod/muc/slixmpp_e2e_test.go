//go:build e2e

package muc_test

import (
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// TestSlixmppRooms: Debian's python3-slixmpp (xep_0045, xep_0092,
// xep_0054) against groups.<domain>: a room it makes by joining is locked
// until it sends the instant-room request, iqs to occupants (a client's
// version, an account's vCard) come back from the occupant JID, and a
// visitor's voice request is approved by the moderator through the form
// (testdata/rooms.py).
func TestSlixmppRooms(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	xmpptest.Slixmpp(t, d, dir, "rooms.py", 90*time.Second)
}
