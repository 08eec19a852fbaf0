//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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
	"github.com/hearthchat/hearth/internal/browsertest"
)

// boxProc is an xmppd process with its direct-TLS port (slixmpp's).
type boxProc struct {
	*xmppd
	tls string
}

func startBox(t *testing.T, bin string, dir state.Dir) *boxProc {
	x := &boxProc{xmppd: &xmppd{state: string(dir), c2s: fmt.Sprintf("127.0.0.1:%d", freePort(t)), web: fmt.Sprintf("127.0.0.1:%d", freePort(t))},
		tls: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	x.cmd = exec.Command(bin, "-state", x.state, "-domain", "hearth.localhost", "-c2s", x.c2s,
		"-c2s-tls", x.tls, "-c2s-onion", "none", "-web", x.web, "-require-setup", "true")
	stderr, _ := x.cmd.StderrPipe()
	if err := x.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.cmd.Process.Kill(); x.cmd.Wait() })
	codes := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(os.Stderr, sc.Text())
			if m := setupLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case codes <- m[1]:
				default:
				}
			}
		}
	}()
	waitPort(t, x.tls)
	waitPort(t, x.web)
	select {
	case x.code = <-codes:
	case <-time.After(2 * time.Second): // a claimed box prints none
	}
	return x
}

// mamPhase runs xmppd/mod/mam's slixmpp scenario (alice and bob,
// passwords alice-pw and bob-pw) trusting only the certificate ca.
func mamPhase(t *testing.T, x *boxProc, ca, phase string) error {
	_, port, _ := net.SplitHostPort(x.tls)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join(repoRoot(t), "xmppd", "mod", "mam", "testdata", "mam.py"),
		"--port", port, "--domain", "hearth.localhost", "--ca", ca, "--n", "30", phase).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		return fmt.Errorf("slixmpp %s: %v\n%s", phase, err, out)
	}
	return nil
}

func runBackupScript(t *testing.T, nd string, env ...string) browsertest.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return browsertest.Run(t, ctx, nd, "setup-ui/e2e/backup.mjs", append([]string{"OUT=" + browsertest.Screenshots(t)}, env...)...)
}

// TestBackupAndRestoreInBrowser: the admin downloads a backup of a
// claimed box whose members have a chat history (30 messages archived
// through slixmpp); a freshly flashed box, after its setup code, takes
// the file through "I have a backup" (a wrong passphrase first: refused,
// nothing changes), restarts itself in place (same process id: xmppd
// re-execs) and comes back as the old box: claimed, and alice logs in
// with her old password over TLS trusting only the OLD box's certificate
// and pages through her whole archive.
func TestBackupAndRestoreInBrowser(t *testing.T) {
	nd := browsertest.NodeDir(t)
	bin := filepath.Join(buildBins(t, "xmppd"), "xmppd")

	// The old box.
	oldDir := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	claimedState(t, oldDir, []member{anna, {"alice", "alice-pw", false}, {"bob", "bob-pw", false}}, nil)
	old := startBox(t, bin, oldDir)
	oldCert := filepath.Join(string(oldDir), "tls", "cert.pem")
	if err := mamPhase(t, old, oldCert, "send"); err != nil {
		t.Fatal(err)
	}
	const pass = "four words of passphrase"
	file := filepath.Join(t.TempDir(), "box"+backup.Suffix)
	res := runBackupScript(t, nd, "MODE=download", "BASE=http://"+old.web, "ADMIN=anna", "ADMIN_PASSWORD=green kettle river",
		"PASSPHRASE="+pass, "FILE="+file)
	for _, k := range []string{"mismatch", "downloaded"} {
		if res.Checks[k] != true {
			t.Errorf("browser check %s: %v", k, res.Checks[k])
		}
	}
	name, _ := res.Checks["name"].(string)
	if !strings.HasSuffix(name, backup.Suffix) {
		t.Errorf("download named %q", name)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup.Read(f, pass)
	f.Close()
	if err != nil {
		t.Fatalf("the downloaded backup: %v", err)
	}
	t.Logf("downloaded: %s", backup.Describe(m))
	old.cmd.Process.Kill()
	old.cmd.Wait()

	// A freshly flashed card.
	newDir := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	fresh := startBox(t, bin, newDir)
	if fresh.code == "" {
		t.Fatal("the fresh box printed no setup code")
	}
	pid := fresh.cmd.Process.Pid
	res = runBackupScript(t, nd, "MODE=restore", "BASE=http://"+fresh.web, "CODE="+fresh.code, "PASSPHRASE="+pass, "FILE="+file)
	for _, k := range []string{"wrongPassphrase", "restored"} {
		if res.Checks[k] != true {
			t.Errorf("browser check %s: %v", k, res.Checks[k])
		}
	}
	// The restart: the staging directory is gone once the new process
	// has put the backup in place; then it listens again.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := os.Stat(backup.Staging(newDir))
		if c, cerr := config.Load(newDir.Config()); errors.Is(err, os.ErrNotExist) && cerr == nil && c.Claimed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the restore was not put in place within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitPort(t, fresh.tls)
	if fresh.cmd.ProcessState != nil || fresh.cmd.Process.Pid != pid {
		t.Fatal("xmppd did not restart in place")
	}
	var lastErr error
	for time.Now().Before(deadline) {
		if lastErr = mamPhase(t, fresh, oldCert, "page"); lastErr == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatal(lastErr)
	}
	if got := login(t, fresh.xmppd, "anna", "green kettle river"); got != "ok" {
		t.Errorf("anna's login after the restore: %q", got)
	}
}
