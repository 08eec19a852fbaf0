//go:build e2e

package image_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/backup"
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/image"
	"github.com/hearthchat/hearth/internal/browsertest"
	"github.com/hearthchat/hearth/xmppd/store"
)

// TestRestoreOntoFreshCard is issue 15's "the SD card died": box A, a
// claimed release-1 box whose members have a chat history (bob's 30
// messages in alice's archive, sent with slixmpp), is backed up from its
// admin page in headless Chromium and powered off. Box B boots from a
// freshly flashed published image (a new disk: no code, nothing on
// /perm), shows its own setup code on its console, and takes the file
// through the wizard's "I have a backup" in Chromium (a wrong passphrase
// first: refused). After xmppd re-execs itself under gokrazy's supervisor
// with the backup in place, alice logs in to B with her old password over
// direct TLS trusting only A's certificate, and pages through her whole
// archive. The browser part is setup-ui/e2e/backup.mjs, the harness of
// the laptop-style TestBackupAndRestoreInBrowser.
func TestRestoreOntoFreshCard(t *testing.T) {
	start := time.Now()
	nodeDir := browsertest.NodeDir(t)
	const adminPW = "green kettle river"
	a := buildVMImageWith(t, "1", func(dir string) {
		st, err := store.Open(state.Dir(dir).DB())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		// mam.py logs in as alice and bob with these passwords.
		for _, u := range []string{"alice", "bob"} {
			if err := st.SetPassword(u, u+"-pw"); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.CreateAccount("anna", adminPW, true); err != nil {
			t.Fatal(err)
		}
		c := config.Default()
		c.Site = config.Site{Name: "Riverside Rowing Club", Reach: "home", Admin: "anna", Done: true}
		if err := config.Save(filepath.Join(dir, "config.json"), c); err != nil {
			t.Fatal(err)
		}
	})
	fresh := buildPublished(t)
	built := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// Box A: its history, then a backup downloaded from its admin page.
	boxA := bootBox(t, a.Path, 80, 5222, 5223)
	if err := boxA.WaitXMPP(ctx, boxA.ports[5222], a.Domain); err != nil {
		t.Fatal(err)
	}
	if err := mam(ctx, boxA.ports[5223], a, "send"); err != nil {
		t.Fatal(err)
	}
	webA := fmt.Sprintf("127.0.0.1:%d", boxA.ports[80])
	waitPage(t, ctx, webA, "/login", `name="password"`)
	const pass = "four words of passphrase"
	file := filepath.Join(t.TempDir(), "box"+backup.Suffix)
	res := browserBackup(t, ctx, nodeDir, "MODE=download", "BASE=http://"+webA, "ADMIN=anna",
		"ADMIN_PASSWORD="+adminPW, "PASSPHRASE="+pass, "FILE="+file)
	if res.Checks["downloaded"] != true {
		t.Fatalf("no backup downloaded: %v", res.Checks)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup.Read(f, pass)
	f.Close()
	if err != nil {
		t.Fatalf("the backup downloaded from box A: %v", err)
	}
	t.Logf("backup of box A: %s", backup.Describe(m))
	boxA.Stop()
	backedUp := time.Now()

	// Box B: a new card with the published image.
	boxB := bootBox(t, fresh, 80, 5222, 5223)
	waitSerial(t, ctx, boxB.VM, "wrote "+image.SetupCodeFile, 3*time.Minute)
	code := codeOnConsole(t, boxB.VM)
	webB := fmt.Sprintf("127.0.0.1:%d", boxB.ports[80])
	waitSetupPage(t, ctx, webB)
	res = browserBackup(t, ctx, nodeDir, "MODE=restore", "BASE=http://"+webB, "CODE="+code, "PASSPHRASE="+pass, "FILE="+file)
	for _, k := range []string{"wrongPassphrase", "restored"} {
		if res.Checks[k] != true {
			t.Errorf("browser check %s: %v", k, res.Checks[k])
		}
	}
	restored := time.Now()
	// B comes back as A: the same certificate, alice's password and archive.
	var last error
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(2 * time.Second) {
		if last = mam(ctx, boxB.ports[5223], a, "page"); last == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice did not read her archive on box B within 3 minutes of the restore: %v", last)
		}
	}
	back := time.Now()
	want, _ := os.ReadFile(a.CA)
	got := serverCert(t, boxB.ports[5223], a.Domain)
	if !bytes.Equal(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: got.Raw}), want) {
		t.Error("box B serves another certificate than box A's")
	}
	t.Logf("figure: whole test %v: image builds %v, box A (boot, 30 messages, backup in the browser) %v, box B boot + restore in the browser %v, restore to alice's archive on B %v",
		time.Since(start).Round(100*time.Millisecond), built.Sub(start).Round(100*time.Millisecond),
		backedUp.Sub(built).Round(100*time.Millisecond), restored.Sub(backedUp).Round(100*time.Millisecond),
		back.Sub(restored).Round(100*time.Millisecond))
}

// mam runs xmppd/mod/mam's slixmpp scenario (alice and bob, passwords
// alice-pw and bob-pw, 30 messages) against a box's direct-TLS port,
// trusting only v's certificate.
func mam(ctx context.Context, port int, v vmImage, phase string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("..", "xmppd", "mod", "mam", "testdata", "mam.py"),
		"--port", fmt.Sprint(port), "--domain", v.Domain, "--ca", v.CA, "--n", "30", phase).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		return fmt.Errorf("slixmpp %s: %v\n%s", phase, err, out)
	}
	return nil
}

// waitPage waits until the box's web port serves path with want in it
// (xmppd serves a "starting" page until its pages are up).
func waitPage(t *testing.T, ctx context.Context, addr, path, want string) {
	t.Helper()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) {
				return
			}
			last = fmt.Sprintf("%d %.200s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s on %s: %s", path, addr, last)
		case <-time.After(time.Second):
		}
	}
}

// browserBackup runs setup-ui/e2e/backup.mjs (see there for its modes).
func browserBackup(t *testing.T, ctx context.Context, nodeDir string, env ...string) (res browsertest.Result) {
	t.Helper()
	shots := browsertest.Screenshots(t, "vm")
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := browsertest.Command(t, ctx, nodeDir, "setup-ui/e2e/backup.mjs", append([]string{"OUT=" + shots}, env...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s\n%s", err, out, stderr.String())
	}
	browsertest.Decode(t, out, &res)
	if res.Error != "" {
		t.Fatalf("browser (%s): %s (screenshots in %s)", env[0], res.Error, shots)
	}
	if len(res.ThirdParty) > 0 {
		t.Errorf("requests leaving the box: %v", res.ThirdParty)
	}
	// Accessibility is the browser suite's to judge (same pages); here
	// the pages only have to work on the real box.
	return res
}
