//go:build e2e

package pep_test

import (
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// TestSlixmppVCard4: XEP-0292 with Debian's python3-slixmpp
// (testdata/vcard4.py): alice publishes her vCard4 with Gajim's options,
// her contact bob gets the +notify event and reads it by PEP and as
// vcard-temp, carol (no contact) is refused; a vcard-temp set renames the
// vCard4; a vcard-temp payload on the node is bad-request/invalid-payload.
func TestSlixmppVCard4(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	if err := d.Server.Contacts().Befriend("alice", "bob", ""); err != nil {
		t.Fatal(err)
	}
	xmpptest.Slixmpp(t, d, dir, "vcard4.py", 90*time.Second)
}
