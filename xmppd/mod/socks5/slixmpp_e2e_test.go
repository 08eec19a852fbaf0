//go:build e2e

package socks5_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// TestSlixmppBytestreams: two members' slixmpp clients (Debian's
// python3-slixmpp with its xep_0065 plugin) find the box's proxy through
// disco, negotiate a bytestream and move 300 kB through it byte for byte;
// afterwards the proxy holds no connection.
func TestSlixmppBytestreams(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 with python3-slixmpp is needed (make test-deps): %v", err)
	}
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) {
		dir = o.State
		o.Proxy65 = "127.0.0.1:0"
		o.TURN.Host = "127.0.0.1"
	})
	if d.Proxy == nil {
		t.Fatal("the proxy did not start")
	}
	_, port, _ := strings.Cut(d.C2STLSAddr.String(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "bytestreams.py"),
		"--port", port, "--domain", xmpptest.Domain, "--ca", filepath.Join(dir.TLS(), "cert.pem"),
		"--alice", "alice-pw", "--bob", "bob-pw").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "TRANSFERRED 300000\nOK") {
		t.Fatalf("slixmpp: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.Proxy.Conns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d proxy connections left after the clients quit", d.Proxy.Conns())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
