//go:build e2e

// Package e2e drives the setup pages in a real browser (Debian's chromium
// through npm playwright-core, axe-core for accessibility) against a real
// xmppd, and logs in with Debian's slixmpp as the admin the wizard made.
// `make web-deps` installs the npm packages (npm ci from package-lock.json)
// into .cache/web-e2e.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/internal/browsertest"
)

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type xmppd struct {
	cmd      *exec.Cmd
	web, c2s string
	code     string
	state    string
	started  time.Time
	answered time.Duration
}

var setupLine = regexp.MustCompile(`setup: http://\S+/setup\?code=([A-Z0-9-]+)`)

func startXmppd(t *testing.T, bin, state string, web bool) *xmppd {
	x := &xmppd{state: state, c2s: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	args := []string{"-state", state, "-domain", "hearth.localhost", "-c2s", x.c2s, "-c2s-tls", "none", "-c2s-onion", "none"}
	if web {
		x.web = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		args = append(args, "-web", x.web, "-require-setup", "true")
	} else {
		args = append(args, "-web", "none")
	}
	args[7] = fmt.Sprintf("127.0.0.1:%d", freePort(t)) // -c2s-tls: a port of its own
	x.cmd = exec.Command(bin, args...)
	stderr, _ := x.cmd.StderrPipe()
	x.started = time.Now()
	if err := x.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.cmd.Process.Kill(); x.cmd.Wait() })
	codes := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := setupLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case codes <- m[1]:
				default:
				}
			}
		}
	}()
	if web {
		// Port 80's promise: an answer within a second of starting.
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + x.web + "/")
			if err == nil {
				resp.Body.Close()
				x.answered = time.Since(x.started)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("web server not answering after 10 s: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		select {
		case x.code = <-codes:
		case <-time.After(15 * time.Second):
			t.Fatal("xmppd printed no setup line")
		}
	}
	return x
}

func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}

func login(t *testing.T, x *xmppd, user, pw string) string {
	host, port, _ := net.SplitHostPort(x.c2s)
	out, err := exec.Command("/usr/bin/python3", // Debian's, which has python3-slixmpp
		filepath.Join(repoRoot(t), "setup-ui", "e2e", "login.py"), host, port,
		user+"@hearth.localhost", pw, filepath.Join(x.state, "tls", "cert.pem")).CombinedOutput()
	if err != nil {
		t.Fatalf("slixmpp: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func TestFirstBootInBrowser(t *testing.T) {
	nodeDir := browsertest.NodeDir(t)
	bins := buildBins(t, "xmppd", "netconf")
	bin := filepath.Join(bins, "xmppd")

	// RSS at rest without the web server, for the figure.
	plain := startXmppd(t, bin, t.TempDir(), false)
	waitPort(t, plain.c2s)
	time.Sleep(time.Second) // at rest: let start-up garbage settle before reading RSS
	rssPlain := rssKiB(t, plain.cmd.Process.Pid)
	plain.cmd.Process.Kill()

	// netconf beside it, as make run has it: the reach page shows its
	// live checks and the wizard asks it to reload.
	stateDir := t.TempDir()
	startNetconf(t, bins, state.Dir(stateDir))
	x := startXmppd(t, bin, stateDir, true)
	t.Logf("figure: port answering %v after start", x.answered.Round(time.Millisecond))
	waitPort(t, x.c2s)
	time.Sleep(time.Second)
	t.Logf("figure: RSS at rest %d KiB without the web server, %d KiB with it (+%d KiB)", rssPlain, rssKiB(t, x.cmd.Process.Pid), rssKiB(t, x.cmd.Process.Pid)-rssPlain)

	// Before the box is claimed nobody logs in, not even an account made
	// on the command line.
	if out, err := exec.Command(bin, "-state", x.state, "useradd", "bob", "bob-password").CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	if got := login(t, x, "bob", "bob-password"); got != "refused" {
		t.Fatalf("login before setup: %q, want refused", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res := browsertest.Run(t, ctx, nodeDir, "setup-ui/e2e/wizard.mjs",
		"BASE=http://"+x.web, "CODE="+x.code, "OUT="+browsertest.Screenshots(t), "PASSWORD=green kettle river")
	if len(res.Pages) < 13 {
		t.Errorf("only %d pages visited", len(res.Pages))
	}
	for _, k := range []string{"wrongCode", "accountPage", "passwordShown", "reachPage", "liveChecks", "inviteLink", "inviteQR", "done", "closed", "loginWrong"} {
		if res.Checks[k] != true {
			t.Errorf("browser check %s: %v", k, res.Checks[k])
		}
	}
	if res.Checks["foreignHost"] != float64(421) {
		t.Errorf("foreign Host: %v, want 421", res.Checks["foreignHost"])
	}
	if res.Checks["foreignOrigin"] != float64(403) {
		t.Errorf("foreign Origin: %v, want 403", res.Checks["foreignOrigin"])
	}
	admin, _ := res.Checks["admin"].(string)
	if admin != "anna" {
		t.Fatalf("admin made by the wizard: %q", admin)
	}
	// The admin the wizard made logs in with a real client; so does bob
	// now that the box is claimed.
	if got := login(t, x, admin, "green kettle river"); got != "ok" {
		t.Fatalf("slixmpp login as %s: %q", admin, got)
	}
	if got := login(t, x, "bob", "bob-password"); got != "ok" {
		t.Fatalf("login after setup: %q", got)
	}
	// The code is spent.
	resp, err := http.Get("http://" + x.web + "/setup?code=" + x.code)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone {
		t.Errorf("setup page after claim: %d, want 410", resp.StatusCode)
	}
}

func waitPort(t *testing.T, addr string) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
