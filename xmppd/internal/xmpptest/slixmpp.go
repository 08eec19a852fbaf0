package xmpptest

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
)

// Slixmpp runs testdata/script with Debian's python3 (python3-slixmpp)
// against d's direct-TLS port: the script gets --port, --domain and --ca
// (d's certificate under dir), then args. The test fails unless the script
// exits 0 having printed OK within timeout; its output is returned. The
// modules' real-client suites share this (each repeated it before). The
// scripts share slixtest.py beside this file (client login, waits, the
// OK/FAIL main); each finds it relative to its own path, since some are
// also run by other packages' tests, not through this runner.
func Slixmpp(t testing.TB, d *xmppd.Daemon, dir state.Dir, script string, timeout time.Duration, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 with python3-slixmpp is needed (make test-deps): %v", err)
	}
	_, port, ok := strings.Cut(d.C2STLSAddr.String(), ":")
	if !ok {
		t.Fatal(d.C2STLSAddr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append([]string{filepath.Join("testdata", script),
		"--port", port, "--domain", Domain, "--ca", filepath.Join(dir.TLS(), "cert.pem")}, args...)
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", argv...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("slixmpp scenario %s: %v\n%s", script, err, out)
	}
	return string(out)
}
