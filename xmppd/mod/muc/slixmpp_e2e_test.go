//go:build e2e

package muc_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
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
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 with python3-slixmpp is needed (make test-deps): %v", err)
	}
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(d.C2STLSAddr.String(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "rooms.py"),
		"--port", port, "--domain", xmpptest.Domain, "--ca", filepath.Join(dir.TLS(), "cert.pem"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("slixmpp scenario: %v\n%s", err, out)
	}
}
