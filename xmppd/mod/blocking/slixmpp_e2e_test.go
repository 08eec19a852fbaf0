//go:build e2e

package blocking_test

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

// TestSlixmppBlocking: a real client library (Debian's python3-slixmpp,
// its xep_0191 plugin with defaults) on two devices of one account: a block
// made on one is pushed to the other, the blocked sender is refused and
// so is what alice sends him; unblocking lets him through again.
func TestSlixmppBlocking(t *testing.T) {
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
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "blocking.py"),
		"--port", port, "--domain", xmpptest.Domain, "--ca", filepath.Join(dir.TLS(), "cert.pem"),
		"--alice", "alice-pw", "--bob", "bob-pw")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("slixmpp scenario: %v\n%s", err, out)
	}
}
