//go:build e2e

package mam_test

import (
	"context"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/smacks"
)

// startAt runs xmppd on the state directory dir (accounts alice and bob
// made on the first start), so that a test can stop it and start it again
// on the same storage.
func startAt(t *testing.T, dir state.Dir, first bool) *xmppd.Daemon {
	t.Helper()
	d, err := xmppd.Start(xmppd.Options{State: dir, Domain: xmpptest.Domain, C2STLS: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if first {
		for _, u := range []string{"alice", "bob"} {
			if err := d.Store.CreateAccount(u, u+"-pw", false); err != nil {
				t.Fatal(err)
			}
		}
	}
	return d
}

func stop(d *xmppd.Daemon) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.Shutdown(ctx)
}

func slixmpp(t *testing.T, d *xmppd.Daemon, dir state.Dir, phase string, extra ...string) {
	t.Helper()
	_, port, _ := strings.Cut(d.C2STLSAddr.String(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	args := append([]string{filepath.Join("testdata", "mam.py"), "--port", port, "--domain", xmpptest.Domain,
		"--ca", filepath.Join(dir.TLS(), "cert.pem")}, extra...)
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", append(args, phase)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("slixmpp phase %s: %v\n%s", phase, err, out)
	}
}

// TestSlixmppArchive drives Debian's python3-slixmpp (xep_0313 over
// xep_0059, xep_0198, xep_0359; testdata/mam.py): 120 messages sent to an
// offline member page back in the order sent, forwards and backwards, 50
// a page, after xmppd restarted; then a phone that syncs from the
// archive loses its link and comes back after the resume window as a new
// session: what it missed comes from the archive after the last
// stanza-id it saw, and nothing twice (offline storage does not send the
// same messages again).
func TestSlixmppArchive(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 with python3-slixmpp is needed (make test-deps): %v", err)
	}
	old := smacks.ResumeTimeout
	smacks.ResumeTimeout = 2 * time.Second
	t.Cleanup(func() { smacks.ResumeTimeout = old })
	dir := state.Dir(t.TempDir())

	d := startAt(t, dir, true)
	slixmpp(t, d, dir, "send")
	stop(d)
	d = startAt(t, dir, false)
	t.Cleanup(func() { stop(d) })
	slixmpp(t, d, dir, "page")
	slixmpp(t, d, dir, "window", "--window", "2")
}
