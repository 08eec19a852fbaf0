//go:build e2e

package ws_test

import (
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

// TestNodeClientWithSlixmpp: npm @xmpp/client over the WebSocket (plain
// HTTP, so SCRAM) and Debian's slixmpp over TCP exchange 10 kB messages,
// each arriving whole.
func TestNodeClientWithSlixmpp(t *testing.T) {
	nm := xmpptest.NodeModules(t)
	dir := t.TempDir()
	d := start(t, func(o *xmppd.Options) { o.State = state.Dir(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = "10000"

	host, port, _ := strings.Cut(d.C2SAddr.String(), ":")
	py := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "wspeer.py"), host, port,
		"bob@"+xmpptest.Domain, "bob-pw", filepath.Join(dir, "tls", "cert.pem"), size)
	bob := xmpptest.Lines(t, "slixmpp", py)
	xmpptest.Expect(t, bob, "ready", 30*time.Second)

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
	alice := xmpptest.Lines(t, "@xmpp/client", node)
	if l := xmpptest.Expect(t, alice, "online", 30*time.Second); !strings.Contains(l, "alice@"+xmpptest.Domain) {
		t.Fatalf("node: %s", l)
	}
	if l := xmpptest.Expect(t, bob, "got", 30*time.Second); !strings.HasPrefix(l, "got "+size+" ok alice@"+xmpptest.Domain) {
		t.Fatalf("slixmpp: %s", l)
	}
	if l := xmpptest.Expect(t, alice, "got", 30*time.Second); l != "got "+size+" ok" {
		t.Fatalf("node: %s", l)
	}
	if err := node.Wait(); err != nil {
		t.Fatalf("node: %v", err)
	}
	py.Wait()
}
