//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/internal/browsertest"
)

// claimedBox starts xmppd on a state directory that is already set up:
// the admin anna exists and the config says claimed (as the wizard
// leaves it; the wizard itself is TestFirstBootInBrowser's).
func claimedBox(t *testing.T) *xmppd {
	bins := buildBins(t, "xmppd")
	dir := state.Dir(t.TempDir())
	claimedState(t, dir, []member{anna}, nil)
	return startClaimed(t, bins, dir)
}

// peer runs invite_peer.py (Debian's slixmpp) as user.
func peer(t *testing.T, ctx context.Context, x *xmppd, mode, user, pw string, extra ...string) *exec.Cmd {
	host, port, _ := net.SplitHostPort(x.c2s)
	args := append([]string{filepath.Join(repoRoot(t), "setup-ui", "e2e", "invite_peer.py"), mode, host, port,
		user + "@hearth.localhost", pw, filepath.Join(x.state, "tls", "cert.pem")}, extra...)
	return exec.CommandContext(ctx, "/usr/bin/python3", args...)
}

// watchPeer starts a slixmpp client in "watch" mode logged in as user and
// returns expect, which reads its output lines until one satisfies ok (or
// the client ends, or ctx is done), and the running command.
func watchPeer(t *testing.T, ctx context.Context, x *xmppd, label, user, pw string) (expect func(what string, ok func(string) bool), watch *exec.Cmd) {
	t.Helper()
	watch = peer(t, ctx, x, "watch", user, pw)
	watch.Stderr = os.Stderr
	out, _ := watch.StdoutPipe()
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect = func(what string, ok func(string) bool) {
		t.Helper()
		for {
			select {
			case l, open := <-lines:
				if !open {
					t.Fatalf("%s ended before %s", label, what)
				}
				t.Logf("%s: %s", label, l)
				if ok(l) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("%s: no %s", label, what)
			}
		}
	}
	return expect, watch
}

// TestInviteInBrowser: the admin makes a group invite in the browser; a
// second browser context follows /i/<token> through the web form and
// lands in /chat/ logged in (issue 10); the admin, logged in with
// slixmpp, gets the new member as a contact (pre-approved, subscription
// both) and the member's first message.
func TestInviteInBrowser(t *testing.T) {
	nd := browsertest.NodeDir(t)
	x := claimedBox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	expect, watch := watchPeer(t, ctx, x, "admin's client", "anna", "green kettle river")
	expect("login", func(l string) bool { return l == "ready" })

	res := browsertest.Run(t, ctx, nd, "setup-ui/e2e/invite.mjs", "BASE=http://"+x.web, "ADMIN=anna", "ADMIN_PASSWORD=green kettle river",
		"OUT="+browsertest.Screenshots(t), "NEW_USER=bert", "NEW_PASSWORD=bert likes boats")
	for _, k := range []string{"androidFirst", "desktopFirst", "allWays", "plainWords", "passwordShown", "inChat", "posterPrint", "appLink", "notePrivate"} {
		if res.Checks[k] != true {
			t.Errorf("browser check %s: %v", k, res.Checks[k])
		}
	}
	if res.Checks["landingStatus"] != float64(200) || res.Checks["goneStatus"] != float64(404) {
		t.Errorf("landing %v, dead link %v; want 200, 404", res.Checks["landingStatus"], res.Checks["goneStatus"])
	}
	token, _ := res.Checks["token"].(string)
	if link, _ := res.Checks["linkHeader"].(string); link != "<xmpp:hearth.localhost?register;preauth="+token+">; rel=\"alternate\"" {
		t.Errorf("Link header %q", link)
	}

	// The pre-approved subscription reached the admin's client.
	expect("contact bert (both)", func(l string) bool { return l == "contact bert@hearth.localhost both" })
	// The new member logs in with an app and writes.
	if out, err := peer(t, ctx, x, "send", "bert", "bert likes boats", "anna@hearth.localhost", "Hello Anna, it is Bert").CombinedOutput(); err != nil {
		t.Fatalf("bert's client: %v\n%s", err, out)
	}
	expect("bert's message", func(l string) bool { return l == "message bert@hearth.localhost Hello Anna, it is Bert" })
	watch.Wait()
}

// TestInviteCommandWithSlixmpp: XEP-0401's ad-hoc command from a real
// client (slixmpp's XEP-0050): the admin lists the commands, runs the
// invite command and gets a link whose web page opens.
func TestInviteCommandWithSlixmpp(t *testing.T) {
	x := claimedBox(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := peer(t, ctx, x, "adhoc", "anna", "green kettle river").CombinedOutput()
	if err != nil {
		t.Fatalf("slixmpp: %v\n%s", err, out)
	}
	fields := map[string]string{}
	var commands []string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "field "); ok {
			k, val, _ := strings.Cut(v, " ")
			fields[k] = val
		}
		if v, ok := strings.CutPrefix(l, "commands "); ok {
			commands = strings.Fields(v)
		}
	}
	if !strings.Contains(strings.Join(commands, " "), "urn:xmpp:invite#invite") {
		t.Fatalf("commands listed: %v\n%s", commands, out)
	}
	if !strings.HasPrefix(fields["uri"], "xmpp:hearth.localhost?register;preauth=") || fields["expire"] == "" {
		t.Fatalf("invite command result: %v\n%s", fields, out)
	}
	landing := fields["landing-url"]
	if !strings.HasPrefix(landing, "http://"+x.web+"/i/") {
		t.Fatalf("landing-url %q", landing)
	}
	resp, err := http.Get(landing)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("landing page of the command's invite: %d", resp.StatusCode)
	}
}
