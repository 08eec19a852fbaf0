//go:build e2e

package private_test

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
	"github.com/hearthchat/hearth/xmppd/mod/private"
)

// TestSlixmppKeyLimit: a real client (Debian's python3-slixmpp, XEP-0049
// plugin) fills private storage up to the per-account key limit, gets
// resource-constraint for one more namespace, clears one and stores it.
func TestSlixmppKeyLimit(t *testing.T) {
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
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "quota.py"),
		"--port", port, "--domain", xmpptest.Domain, "--ca", filepath.Join(dir.TLS(), "cert.pem"),
		"--password", "alice-pw", "--keys", strconv.Itoa(private.MaxKeys), "--per-set", strconv.Itoa(private.MaxPerSet))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("slixmpp scenario: %v\n%s", err, out)
	}
	u, err := d.Store.Usage("alice")
	if err != nil || u[private.Kind].Items != private.MaxKeys {
		t.Fatalf("alice's private usage %v (%v), want %d keys", u, err, private.MaxKeys)
	}
}
