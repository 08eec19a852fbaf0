//go:build e2e

package push_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/component"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// TestSlixmppPushComponent: slixmpp phones enable push with an app server
// on a second domain — slixmpp's ComponentXMPP as push.example.test over
// XEP-0114 (xmppd/component), the stand-in for a phone vendor's
// app server until federation exists; a message for a hibernating phone
// and one for a phone that logged out each reach it as a summary, and so
// does a mention in a members-only room of a member not in it.
func TestSlixmppPushComponent(t *testing.T) { runSlixmppPush(t, true) }

// TestSlixmppPushClient: the same with the app server as a client of this
// server (pushsvc@example.test/app): a push service need not be a domain.
func TestSlixmppPushClient(t *testing.T) { runSlixmppPush(t, false) }

func runSlixmppPush(t *testing.T, asComponent bool) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 with python3-slixmpp is needed (make test-deps): %v", err)
	}
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { dir = o.State })
	for _, u := range []string{"carol", "dave", "pushsvc"} {
		if err := d.Store.CreateAccount(u, u+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	_, port, _ := strings.Cut(d.C2STLSAddr.String(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	args := []string{filepath.Join("testdata", "push_appserver.py"),
		"--port", port, "--domain", xmpptest.Domain, "--ca", filepath.Join(dir.TLS(), "cert.pem")}
	if asComponent {
		secret, err := component.SecretFile(filepath.Join(t.TempDir(), "component-secret"))
		if err != nil {
			t.Fatal(err)
		}
		l, err := component.Listen(d.Server, "127.0.0.1:0", "push."+xmpptest.Domain, secret)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		_, cport, _ := strings.Cut(l.Addr().String(), ":")
		args = append(args, "--component", cport, "--secret", secret)
	}
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	// The script asks; the test looks at the server and answers.
	await := func(cond func() bool) string {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if cond() {
				return "yes\n"
			}
		}
		return "no\n"
	}
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(&out, line)
		switch line {
		case "HIBERNATING? alice":
			io.WriteString(stdin, await(func() bool {
				s := d.Server.Router.Session("alice", "phone")
				return s != nil && s.Detached()
			}))
		case "GONE? carol", "GONE? dave":
			user := strings.TrimPrefix(line, "GONE? ")
			io.WriteString(stdin, await(func() bool { return len(d.Server.Router.Sessions(user)) == 0 }))
		}
	}
	err = <-done
	if err != nil || !strings.Contains(out.String(), "\nOK\n") && !strings.HasPrefix(out.String(), "OK\n") {
		t.Fatalf("slixmpp scenario: %v\n%s", err, out.String())
	}
}
