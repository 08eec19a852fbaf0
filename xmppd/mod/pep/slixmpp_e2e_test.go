//go:build e2e

package pep_test

import (
	"os/exec"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/mod/pep"
)

// TestSlixmppOMEMOKeys: Debian's python3-slixmpp (XEP-0060/0163/0115
// plugins) publishes OMEMO device lists and bundles of both generations
// with Conversations' publish-options; its contact gets the last device
// lists on presence through +notify caps, the next one live, and fetches
// the bundles (testdata/omemo_keys.py).
func TestSlixmppOMEMOKeys(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	if err := d.Server.Contacts().Befriend("alice", "bob", ""); err != nil {
		t.Fatal(err)
	}
	xmpptest.Slixmpp(t, d, dir, "omemo_keys.py", 90*time.Second)
	u, err := d.Store.Usage("alice")
	// 4 nodes, 5 items.
	if err != nil || u[pep.Kind].Items != 9 {
		t.Fatalf("alice's pep usage %v (%v), want 9 keys", u, err)
	}
}

// TestSlixmppAvatarsBookmarks: slixmpp's avatar (XEP-0084, XEP-0153),
// nickname (XEP-0172) and bookmark (XEP-0048 over XEP-0049) plugins
// against the conversions (testdata/avatar.py).
func TestSlixmppAvatarsBookmarks(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	if err := d.Server.Contacts().Befriend("alice", "bob", ""); err != nil {
		t.Fatal(err)
	}
	xmpptest.Slixmpp(t, d, dir, "avatar.py", 90*time.Second)
}

// TestSlixmppOMEMOChat: two slixmpp clients exchange OMEMO 2 encrypted
// messages both ways, their keys published and fetched through PEP
// (python3-omemo/python3-twomemo; testdata/omemo_chat.py).
func TestSlixmppOMEMOChat(t *testing.T) {
	if out, err := exec.Command("/usr/bin/python3", "-c", "import omemo, twomemo").CombinedOutput(); err != nil {
		t.Fatalf("Debian's python3-omemo and python3-twomemo are needed (make test-deps): %v\n%s", err, out)
	}
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	if err := d.Server.Contacts().Befriend("alice", "bob", ""); err != nil {
		t.Fatal(err)
	}
	xmpptest.Slixmpp(t, d, dir, "omemo_chat.py", 90*time.Second)
}

// TestSlixmppClub: a new member's first minutes through slixmpp
// (testdata/club.py): registered in-band with an invite, she finds the
// club's default room in her Bookmarks 2 with autojoin; when alice's
// client approves her subscription, alice's last avatar arrives without
// another presence; a node alice limits to a roster group is hers to read
// and refused to bob with not-in-roster-group.
func TestSlixmppClub(t *testing.T) {
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	if err := d.Server.Contacts().Befriend("alice", "bob", ""); err != nil {
		t.Fatal(err)
	}
	inv, err := invites.Create(d.Store, invites.Options{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	xmpptest.Slixmpp(t, d, dir, "club.py", 90*time.Second,
		// One argument: a token may begin with "-", which argparse would
		// take for an option (failed in CI, about 1 run in 64).
		"--token="+inv.Token)
}
