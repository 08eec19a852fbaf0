//go:build e2e

package carbons_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 with python3-slixmpp is needed (make test-deps): %v", err)
	}
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	_, port, _ := strings.Cut(d.C2STLSAddr.String(), ":")
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatal(d.C2STLSAddr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "carbons.py"),
		"--port", port, "--domain", xmpptest.Domain, "--ca", filepath.Join(dir.TLS(), "cert.pem"),
		"--alice", "alice-pw", "--bob", "bob-pw")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("slixmpp scenario: %v\n%s", err, out)
	}
}
