//go:build e2e

package c2s_test

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

// TestNodeSASL2FASTWithSlixmpp: npm @xmpp/client 0.14.0 logs in with SASL2
// and Bind 2 and asks for a FAST token, then logs in again with only the
// token (its password wrong) over STARTTLS; each time it exchanges a
// message with Debian's slixmpp, which logs in with SASL1 as before.
func TestNodeSASL2FASTWithSlixmpp(t *testing.T) {
	nm := xmpptest.NodeModules(t)
	dir := t.TempDir()
	d := xmpptest.Start(t, func(o *xmppd.Options) { o.State = state.Dir(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	host, port, _ := strings.Cut(d.C2SAddr.String(), ":")
	py := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "peer.py"), host, port,
		"bob@"+xmpptest.Domain, "bob-pw", filepath.Join(dir, "tls", "cert.pem"), "2")
	bob := xmpptest.Lines(t, "slixmpp", py)
	xmpptest.Expect(t, bob, "ready", 30*time.Second)

	// ES modules ignore NODE_PATH: the script runs beside a link to the
	// installed node_modules.
	js := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", "fastclient.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(js, "fastclient.mjs"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(nm, filepath.Join(js, "node_modules")); err != nil {
		t.Fatal(err)
	}
	node := exec.CommandContext(ctx, "node", filepath.Join(js, "fastclient.mjs"),
		"xmpp://"+d.C2SAddr.String(), xmpptest.Domain, "alice", "alice-pw", "bob@"+xmpptest.Domain)
	// The box's certificate is self-signed (loopback only).
	node.Env = append(os.Environ(), "NODE_TLS_REJECT_UNAUTHORIZED=0")
	alice := xmpptest.Lines(t, "@xmpp/client", node)

	// First login: SCRAM over SASL2, bound inline (no RFC 6120 bind iq),
	// resource from the tag.
	// The token arrives inside <success/>, before "online".
	if l := xmpptest.Expect(t, alice, "token", 30*time.Second); !strings.HasPrefix(l, "token HT-SHA-256-NONE ") {
		t.Fatalf("token: %s", l)
	}
	l := xmpptest.Expect(t, alice, "online", 10*time.Second)
	if !strings.Contains(l, "alice@"+xmpptest.Domain+"/node.") || !strings.HasSuffix(l, " SCRAM-SHA-1 iq-binds=0") {
		t.Fatalf("first login: %s", l)
	}
	xmpptest.Expect(t, bob, "got ping 1 alice@"+xmpptest.Domain+"/node.", 30*time.Second)
	xmpptest.Expect(t, alice, "echo 1", 30*time.Second)

	// Second login: the token alone.
	if l := xmpptest.Expect(t, alice, "online", 30*time.Second); !strings.HasSuffix(l, " HT-SHA-256-NONE iq-binds=0") {
		t.Fatalf("FAST login: %s", l)
	}
	xmpptest.Expect(t, bob, "got ping 2", 30*time.Second)
	xmpptest.Expect(t, alice, "done", 30*time.Second)
	if err := node.Wait(); err != nil {
		t.Fatalf("node: %v", err)
	}
	py.Wait()
	devs, err := d.Store.Devices("alice")
	if err != nil || len(devs) != 1 || devs[0].Software != "hearth-e2e" || devs[0].TokenExpiry.IsZero() {
		t.Fatalf("devices: %+v %v", devs, err)
	}
}
