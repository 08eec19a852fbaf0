//go:build e2e

package backup_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/backup"
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
)

const domain = "example.test"

func start(t *testing.T, dir state.Dir) *xmppd.Daemon {
	t.Helper()
	d, err := xmppd.Start(xmppd.Options{State: dir, Domain: domain, C2STLS: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func stop(d *xmppd.Daemon) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.Shutdown(ctx)
}

// mam runs a phase of xmppd/mod/mam's slixmpp scenario (Debian's
// python3-slixmpp: XEP-0313 with XEP-0059 paging), trusting only ca.
func mam(t *testing.T, d *xmppd.Daemon, ca, phase string) {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 with python3-slixmpp is needed (make test-deps): %v", err)
	}
	_, port, _ := strings.Cut(d.C2STLSAddr.String(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", "../../xmppd/mod/mam/testdata/mam.py",
		"--port", port, "--domain", domain, "--ca", ca, "--n", "60", phase).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("slixmpp phase %s: %v\n%s", phase, err, out)
	}
}

// TestBackupWipeRestore: a running box with accounts, 60 archived
// messages and an upload is backed up while it serves (the database
// through its live backup), its state directory wiped and replaced by a
// fresh box's (new certificate, no accounts), the backup restored: alice
// logs in with her old password over TLS that trusts only the OLD
// certificate, and pages through her whole history in order.
func TestBackupWipeRestore(t *testing.T) {
	dir := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Domain, c.Claimed = domain, true
	if err := config.Save(dir.Config(), c); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir)
	for _, u := range []string{"alice", "bob"} {
		if err := d.Store.CreateAccount(u, u+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	mam(t, d, filepath.Join(dir.TLS(), "cert.pem"), "send")
	upload := filepath.Join(dir.Uploads(), "x1", "holiday.jpg")
	os.MkdirAll(filepath.Dir(upload), 0o700)
	os.WriteFile(upload, bytes.Repeat([]byte("jpeg"), 100000), 0o600)

	var file bytes.Buffer
	m, err := backup.Write(&file, backup.Source{Dir: dir, Domain: domain, Version: "test",
		DB: func(w io.Writer) error { _, err := d.Store.Backup(w); return err }}, "a long passphrase")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %s, file %d bytes", backup.Describe(m), file.Len())
	oldCert := filepath.Join(t.TempDir(), "old-cert.pem")
	if b, err := os.ReadFile(filepath.Join(dir.TLS(), "cert.pem")); err != nil {
		t.Fatal(err)
	} else {
		os.WriteFile(oldCert, b, 0o600)
	}
	stop(d)

	// A freshly flashed card: nothing of the old box.
	if err := os.RemoveAll(string(dir)); err != nil {
		t.Fatal(err)
	}
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	fresh := config.Default()
	fresh.Domain = domain
	config.Save(dir.Config(), fresh)
	stop(start(t, dir)) // makes its own certificate and database
	if b, _ := os.ReadFile(filepath.Join(dir.TLS(), "cert.pem")); bytes.Equal(b, mustRead(t, oldCert)) {
		t.Fatal("the fresh box made the same certificate: the test proves nothing")
	}

	if _, err := backup.Stage(dir, bytes.NewReader(file.Bytes()), "wrong passphrase!"); err == nil {
		t.Fatal("wrong passphrase accepted")
	}
	if _, err := backup.Stage(dir, bytes.NewReader(file.Bytes()), "a long passphrase"); err != nil {
		t.Fatal(err)
	}
	if applied, err := backup.Resume(dir); err != nil || !applied {
		t.Fatalf("Resume: %v %v", applied, err)
	}
	d = start(t, dir)
	defer stop(d)
	mam(t, d, oldCert, "page")
	if b, err := os.ReadFile(upload); err != nil || len(b) != 400000 {
		t.Fatalf("upload after restore: %d bytes, %v", len(b), err)
	}
	if c, err := config.Load(dir.Config()); err != nil || !c.Claimed {
		t.Fatalf("config after restore: %+v %v", c, err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
