//go:build e2e

package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/backup"
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestBackupCommandWhileRunning: `xmppd backup` while the server runs
// takes the database through the admin socket (the server holds the file
// lock) and writes to a folder; `xmppd restore` with the server running
// only stages (nothing changes), and the next start puts it in place;
// a wrong passphrase file is refused with a clear message.
func TestBackupCommandWhileRunning(t *testing.T) {
	bins := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bins+"/", "github.com/hearthchat/hearth/cmd/xmppd").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	bin := filepath.Join(bins, "xmppd")
	dir := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	dir.Ensure()
	c := config.Default()
	c.Domain, c.Claimed = "club.example", true
	config.Save(dir.Config(), c)
	run := func(d state.Dir, args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"-state", string(d)}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := run(dir, "useradd", "anna", "anna password"); err != nil {
		t.Fatal(err, out)
	}
	start := func(d state.Dir) *exec.Cmd {
		c2s := freeAddr(t)
		cmd := exec.Command(bin, "-state", string(d), "-c2s", c2s, "-c2s-tls", freeAddr(t), "-c2s-onion", "none",
			"-web", "none", "-turn", "none", "-proxy65", "none")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		deadline := time.Now().Add(30 * time.Second)
		for !running(d) {
			if time.Now().After(deadline) {
				t.Fatal("xmppd did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
		return cmd
	}
	srv := start(dir)
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("a passphrase of words\n"), 0o600)
	stick := t.TempDir()
	out, err := run(dir, "backup", "-passphrase-file", pw, "-keep", "2", "-out", stick)
	if err != nil {
		t.Fatalf("backup while running: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	list, _ := backup.List(stick)
	if len(list) != 1 || !strings.Contains(out, list[0]) {
		t.Fatalf("stick holds %v; output %s", list, out)
	}

	// Restore onto a second box that runs: staged only.
	dir2 := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	dir2.Ensure()
	c.Domain = "other.example"
	config.Save(dir2.Config(), c)
	srv2 := start(dir2)
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("not it at all, sorry"), 0o600)
	if out, err := run(dir2, "restore", "-passphrase-file", bad, list[0]); err == nil || !strings.Contains(out, "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v %s", err, out)
	}
	out, err = run(dir2, "restore", "-passphrase-file", pw, list[0])
	if err != nil || !strings.Contains(out, "when it restarts") || !backup.Pending(dir2) {
		t.Fatalf("restore while running: %v %s", err, out)
	}
	if c2, _ := config.Load(dir2.Config()); c2.Domain != "other.example" {
		t.Fatal("a staged restore changed the running box")
	}
	srv2.Process.Kill()
	srv2.Wait()
	srv.Process.Kill()
	srv.Wait()
	start(dir2) // puts the backup in place first thing
	out, err = run(dir2, "health")
	if c2, _ := config.Load(dir2.Config()); c2.Domain != "club.example" || backup.Pending(dir2) {
		t.Fatalf("after the restart: domain %q pending %v (%v %s)", c2.Domain, backup.Pending(dir2), err, out)
	}
	// The restored accounts: the running server lists them.
	resp, err := adminClient(dir2).Get("http://admin/users")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(b.String(), `"anna"`) {
		t.Fatalf("users after restore: %s", b.String())
	}
}
