//go:build e2e

package ws_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// nodeModules is where `make web-deps` installed setup-ui/e2e's pinned
// npm packages (@xmpp/client among them).
func nodeModules(t *testing.T) string {
	dir := os.Getenv("HEARTH_WEB_E2E_NODE")
	if dir == "" {
		wd, _ := os.Getwd()
		dir = filepath.Join(wd, "..", "..", ".cache", "web-e2e")
	}
	nm := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(nm, "@xmpp", "client")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("@xmpp/client missing in %s (make web-deps)", nm)
		}
		t.Skipf("@xmpp/client missing in %s: run make web-deps", nm)
	}
	return nm
}

// lines runs cmd and returns its stdout's lines.
func lines(t *testing.T, name string, cmd *exec.Cmd) <-chan string {
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Logf("%s: %s", name, sc.Text())
			ch <- sc.Text()
		}
		close(ch)
	}()
	return ch
}

func expect(t *testing.T, ch <-chan string, prefix string, within time.Duration) string {
	t.Helper()
	limit := time.After(within)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("peer ended before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-limit:
			t.Fatalf("no %q within %v", prefix, within)
		}
	}
}

// TestNodeClientWithSlixmpp: npm @xmpp/client over the WebSocket (plain
// HTTP, so SCRAM) and Debian's slixmpp over TCP exchange 10 kB messages,
// each arriving whole.
func TestNodeClientWithSlixmpp(t *testing.T) {
	nm := nodeModules(t)
	dir := t.TempDir()
	d := start(t, func(o *xmppd.Options) { o.State = state.Dir(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = "10000"

	host, port, _ := strings.Cut(d.C2SAddr.String(), ":")
	py := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "wspeer.py"), host, port,
		"bob@"+xmpptest.Domain, "bob-pw", filepath.Join(dir, "tls", "cert.pem"), size)
	bob := lines(t, "slixmpp", py)
	expect(t, bob, "ready", 30*time.Second)

	// ES modules ignore NODE_PATH: the script runs beside a link to the
	// installed node_modules.
	js := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", "wsclient.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(js, "wsclient.mjs"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(nm, filepath.Join(js, "node_modules")); err != nil {
		t.Fatal(err)
	}
	// Node 20 has WebSocket (which @xmpp/websocket uses) behind a flag.
	node := exec.CommandContext(ctx, "node", "--experimental-websocket", filepath.Join(js, "wsclient.mjs"),
		wsURL(d), xmpptest.Domain, "alice", "alice-pw", "bob@"+xmpptest.Domain, size)
	alice := lines(t, "@xmpp/client", node)
	if l := expect(t, alice, "online", 30*time.Second); !strings.Contains(l, "alice@"+xmpptest.Domain) {
		t.Fatalf("node: %s", l)
	}
	if l := expect(t, bob, "got", 30*time.Second); !strings.HasPrefix(l, "got "+size+" ok alice@"+xmpptest.Domain) {
		t.Fatalf("slixmpp: %s", l)
	}
	if l := expect(t, alice, "got", 30*time.Second); l != "got "+size+" ok" {
		t.Fatalf("node: %s", l)
	}
	if err := node.Wait(); err != nil {
		t.Fatalf("node: %v", err)
	}
	py.Wait()
}
