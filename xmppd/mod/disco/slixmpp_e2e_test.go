//go:build e2e

package disco_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	appversion "github.com/hearthchat/hearth/appliance/version"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
)

// TestSlixmppInfo queries every information module with the XEP plugins
// of a real client library (Debian's python3-slixmpp): disco and caps
// (checked with slixmpp's own caps hash), contact addresses, ping,
// version, time, vcard-temp, private storage and last activity.
func TestSlixmppInfo(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 with python3-slixmpp is needed (make test-deps): %v", err)
	}
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	if err := d.Store.CreateAccount("root", "root-pw-not-used", true); err != nil {
		t.Fatal(err)
	}
	if err := roster.Befriend(d.Server, "alice", "bob"); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(d.C2STLSAddr.String(), ":")
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatal(d.C2STLSAddr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "info.py"),
		"--port", port, "--domain", xmpptest.Domain, "--ca", filepath.Join(dir.TLS(), "cert.pem"),
		"--alice", "alice-pw", "--bob", "bob-pw", "--version", appversion.Version)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("slixmpp scenario: %v\n%s", err, out)
	}
}
