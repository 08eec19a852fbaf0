//go:build e2e

package image_test

import (
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

	"github.com/hearthchat/hearth/appliance/setupcard"
	"github.com/hearthchat/hearth/image"
	"github.com/hearthchat/hearth/internal/browsertest"
)

// TestWholeProduct is "flash, plug in, set up from a phone", once: the
// published amd64 image on a card larger than the image boots in qemu,
// the setup code is read off the card's boot partition (as a person
// reads it on a computer), a phone-sized headless Chromium completes the
// setup wizard through the forwarded port 80 under the name hearth.local
// (setup-ui/e2e/wizard.mjs, the harness of the browser suite), and a
// Debian slixmpp client logs in with the account the wizard made.
func TestWholeProduct(t *testing.T) {
	start := time.Now()
	nodeDir := browsertest.NodeDir(t)
	img := buildPublished(t)
	if err := os.Truncate(img, 3<<30); err != nil { // a card larger than the image
		t.Fatal(err)
	}
	built := time.Now()

	b := bootBox(t, img, 80, 5222, 5223)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	waitSerial(t, ctx, b.VM, "wrote "+image.SetupCodeFile, 3*time.Minute)
	// The person takes the card to a computer: the file is on the card
	// now (written, synced, unmounted), so read it from the image.
	code := setupcard.Find(readBoot(t, img, image.SetupCodeFile))
	if code == "" {
		t.Fatalf("no setup code in %s on the card", image.SetupCodeFile)
	}
	if c := codeOnConsole(t, b.VM); c != code {
		t.Errorf("console shows %s, the card %s", c, code)
	}
	web := fmt.Sprintf("127.0.0.1:%d", b.ports[80])
	waitSetupPage(t, ctx, web)
	t.Logf("figure: power-on to the setup page answering: %v", time.Since(built).Round(100*time.Millisecond))

	// The wizard, in the browser, through port 80.
	out := browsertest.Screenshots(t, "vm")
	const password = "green kettle river"
	wizStart := time.Now()
	cmd := browsertest.Command(t, ctx, nodeDir, "setup-ui/e2e/wizard.mjs", "BASE=http://hearth.local", "HOST_RULES=MAP hearth.local "+web,
		"REQ_BASE=http://"+web, "CODE="+code, "OUT="+out, "PASSWORD="+password)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s\n%s", err, stdout, stderr.String())
	}
	var res browsertest.Result
	browsertest.Decode(t, stdout, &res)
	t.Logf("figure: wizard in the browser against the VM: %v, %d pages", time.Since(wizStart).Round(100*time.Millisecond), len(res.Pages))
	if res.Error != "" {
		t.Fatalf("browser: %s (screenshots in %s)", res.Error, out)
	}
	for _, k := range []string{"wrongCode", "accountPage", "reachPage", "inviteLink", "done", "closed"} {
		if res.Checks[k] != true {
			t.Errorf("browser check %s: %v", k, res.Checks[k])
		}
	}
	if len(res.ThirdParty) > 0 {
		t.Errorf("requests leaving the box: %v", res.ThirdParty)
	}
	if res.Checks["foreignHost"] != float64(421) {
		t.Errorf("foreign Host: %v, want 421", res.Checks["foreignHost"])
	}
	admin, _ := res.Checks["admin"].(string)
	if admin == "" {
		t.Fatalf("the wizard did not say which account it made: %v", res.Checks)
	}

	// A chat app logs in as that person, trusting the certificate the
	// box made for itself.
	ca := filepath.Join(t.TempDir(), "box.pem")
	cert := serverCert(t, b.ports[5223], "hearth.local")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	login, err := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join(repoDir(t), "setup-ui", "e2e", "login.py"),
		"127.0.0.1", fmt.Sprint(b.ports[5222]), admin+"@hearth.local", password, ca).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(login)), "\n")
	if err != nil || lines[len(lines)-1] != "ok" {
		t.Fatalf("slixmpp login as %s@hearth.local: %v\n%s", admin, err, login)
	}
	t.Logf("figure: %s@hearth.local logged in with slixmpp; whole test %v (image build %v)", admin,
		time.Since(start).Round(100*time.Millisecond), built.Sub(start).Round(100*time.Millisecond))
}

// waitSetupPage waits until port 80 serves the setup page itself (not the
// "starting" page), asking for it by the box's name.
func waitSetupPage(t *testing.T, ctx context.Context, addr string) {
	t.Helper()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/setup", nil)
		req.Host = "hearth.local"
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `name="code"`) {
				return
			}
			last = fmt.Sprintf("%d %.200s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no setup page on %s: %s", addr, last)
		case <-time.After(time.Second):
		}
	}
}
