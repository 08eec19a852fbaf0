//go:build e2e

// Package e2e drives the browser chat (/chat/) in Debian's chromium
// through npm playwright-core against a real xmppd, with a slixmpp peer
// over TCP. The npm packages are setup-ui's browser-test ones (make
// web-deps, .cache/web-e2e); Converse itself must be embedded (make
// webchat-assets, which make test runs first).
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/webchat"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitHTTP(t *testing.T, url string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering 200: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type chatResult struct {
	Pages []struct {
		Name                               string
		Ms, Transferred, Decoded, Requests int
	}
	ThirdParty []string
	Violations []struct {
		Page, ID, Impact string
		Nodes            []string
	}
	Checks map[string]any
	Auth   []string
	Resume []string
	CSP    []string
	Errors []string
	Error  string
}

const domain = "hearth.localhost"

func TestBrowserChat(t *testing.T) {
	root := repoRoot()
	nodeDir := os.Getenv("HEARTH_WEB_E2E_NODE")
	if nodeDir == "" {
		nodeDir = filepath.Join(root, ".cache", "web-e2e")
	}
	ci := os.Getenv("CI") != ""
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "playwright-core")); err != nil {
		if ci {
			t.Fatalf("npm packages missing in %s (make web-deps)", nodeDir)
		}
		t.Skipf("npm packages missing in %s: run make web-deps", nodeDir)
	}
	if !webchat.Built() {
		if ci {
			t.Fatal("Converse is not embedded (make webchat-assets)")
		}
		t.Skip("Converse is not embedded: run make webchat-assets")
	}
	bins := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bins+"/", "github.com/hearthchat/hearth/cmd/xmppd").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	bin := filepath.Join(bins, "xmppd")
	state := t.TempDir()
	c2s := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	webPort, tlsPort := freePort(t), freePort(t)
	cmd := exec.Command(bin, "-state", state, "-domain", domain,
		"-c2s", c2s, "-c2s-tls", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-c2s-onion", "none",
		"-web", fmt.Sprintf("127.0.0.1:%d", webPort), "-web-tls", fmt.Sprintf("127.0.0.1:%d", tlsPort),
		"-require-setup", "false")
	logf, _ := os.Create(filepath.Join(t.TempDir(), "xmppd.log"))
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("xmppd log (tail):\n%s", tail(string(b), 40))
		}
	})
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/chat/", webPort))
	pw := map[string]string{"alice": "alice tends the tomatoes", "bob": "bob waters the beans", "carol": "carol prunes roses"}
	for u, p := range pw {
		if out, err := exec.Command(bin, "-state", state, "useradd", u, p).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v %s", u, err, out)
		}
	}
	// The box's own certificate, for slixmpp (the browser ignores it: a
	// self-made certificate is what HTTPS on the home network has).
	ca := filepath.Join(state, "tls", "cert.pem")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(ca); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no certificate: %v", err)
		}
	}

	out := filepath.Join(root, "out", "screenshots")
	os.MkdirAll(out, 0o755)
	script := filepath.Join(nodeDir, "webchat-chat.mjs")
	src, err := os.ReadFile(filepath.Join(root, "xmppd", "webchat", "e2e", "chat.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, src, 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(c2s)
	peer, _ := json.Marshal([]string{"/usr/bin/python3", filepath.Join(root, "xmppd", "webchat", "e2e", "peer.py"), host, port, "carol@" + domain, pw["carol"], ca})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", script)
	node.Dir = nodeDir
	node.Env = append(os.Environ(),
		fmt.Sprintf("BASE=http://hearth.local:%d", webPort),
		fmt.Sprintf("TLSBASE=https://hearth.local:%d", tlsPort),
		"DOMAIN="+domain, "OUT="+out, "PEER="+string(peer),
		"ALICE_PW="+pw["alice"], "BOB_PW="+pw["bob"])
	node.Stderr = os.Stderr
	stdout, err := node.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stdout)
	}
	var res chatResult
	if err := json.Unmarshal(lastLine(stdout), &res); err != nil {
		t.Fatalf("node output: %v\n%s", err, stdout)
	}
	for _, p := range res.Pages {
		t.Logf("figure: %s: %d bytes transferred (%d decoded) in %d responses, login form after %d ms", p.Name, p.Transferred, p.Decoded, p.Requests, p.Ms)
	}
	t.Logf("SASL mechanisms used: %v; after reload: %v (resumption: %v)", res.Auth, res.Checks["reloadFreshAuth"], res.Resume)
	for _, e := range res.Errors {
		t.Logf("browser console: %s", e)
	}
	if res.Error != "" {
		t.Fatalf("browser: %s\nchecks so far: %v\nCSP reports: %v", res.Error, res.Checks, res.CSP)
	}
	for _, c := range res.CSP {
		t.Errorf("CSP violation: %s", c)
	}
	if len(res.ThirdParty) > 0 {
		t.Errorf("requests leaving the box: %v", res.ThirdParty)
	}
	for _, a := range res.Auth {
		if !strings.Contains(a, "SCRAM-") {
			t.Errorf("login without SCRAM: %s", a)
		}
	}
	if len(res.Auth) == 0 {
		t.Error("no SASL exchange seen on the WebSocket: the test proved nothing about the mechanism")
	}
	// axe: what is ours fails; what is Converse's own UI is reported (an
	// upstream matter, see the report).
	for _, v := range res.Violations {
		ours := false
		for _, n := range v.Nodes {
			if strings.Contains(n, "hearth-") {
				ours = true
			}
		}
		if ours {
			t.Errorf("accessibility (ours): %+v", v)
		} else {
			t.Logf("accessibility (Converse's UI): %s %s %s on %v", v.Page, v.ID, v.Impact, v.Nodes)
		}
	}
	wantVectors := []any{
		"4b007901b765489abead49d926f721d065a429c1",                         // RFC 6070 PBKDF2-HMAC-SHA1, c=4096
		"c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a", // same with SHA-256
		"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", // RFC 4231 case 2
		"a9993e364706816aba3e25717850c26c9cd0d89d",                         // SHA-1("abc")
	}
	if got, _ := res.Checks["shimVectors"].([]any); fmt.Sprint(got) != fmt.Sprint(wantVectors) {
		t.Errorf("shim vectors: %v", got)
	}
	checks := map[string]any{
		"bobSecure": false, "bobShim": true, "noteShown": true, "noRegister": true,
		"aliceBob": true, "carol": true, "reloadNoForm": true, "reload": true,
		"httpsSecure": true, "httpsNoteHidden": true, "https": true,
	}
	for k, want := range checks {
		if res.Checks[k] != want {
			t.Errorf("check %s: %v, want %v", k, res.Checks[k], want)
		}
	}
	// Known, not yet fixed: after the reload Converse resumes the stream
	// (<resumed/>), then stamps its next message from="bob@…/converse.js-N"
	// with a NEW resource, not the resumed session's; the server answers
	// the invalid-from stream error (RFC 6120 §8.1.2.1), Converse logs in
	// afresh and never resends that message (seen in the frames). A fix is
	// either Converse keeping its resource across the reload or the server
	// stamping 'from' for its own client; until then this is logged, not
	// failed.
	if res.Checks["reloadSend"] != true {
		t.Logf("KNOWN: message sent right after the reload: %v", res.Checks["reloadSend"])
	}
	if s, _ := res.Checks["unreachableText"].(string); !strings.Contains(s, "does not answer") {
		t.Errorf("unreachable box: status %q", s)
	}
}

func lastLine(b []byte) []byte {
	var last []byte
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "{") {
			last = []byte(l)
		}
	}
	return last
}

func tail(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
