//go:build e2e

package onion

// tor's SOCKS socket for xmppd's onion federation, with Debian's tor.
// tor opens no SOCKS listener while DisableNetwork is 1 (its log: "Tor
// will not make or accept non-control network connections"), so this tor
// has its network on but runs in a network namespace of its own with
// nothing in it (unshare -n: not even loopback is up): it can reach
// nothing, and nothing but its unix sockets reaches it.

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/hearthchat/hearth/internal/testenv"
	"github.com/hearthchat/hearth/netconf/status"
)

// isolatedTor runs the onion service with tor in an empty network
// namespace and a SOCKS socket; extra are more tor options.
func isolatedTor(t *testing.T, b *status.Board, extra ...string) (*Service, string) {
	t.Helper()
	needTor(t)
	testenv.NeedRoot(t, "tor runs in a network namespace of its own (unshare -n)")
	unshare := testenv.NeedCommand(t, "unshare", "util-linux")
	tor, err := resolveCommand(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tor")
	socks := filepath.Join(dir, "socks.sock")
	s, err := New(Options{TorExe: append(append([]string{unshare, "-n"}, tor...), extra...), DataDir: dir, Ports: testPorts, Reporter: b,
		SocksSocket: socks, StartTimeout: 45 * time.Second, BootstrapTimeout: 10 * time.Minute, Log: torLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	runService(t, s)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, err := os.Stat(socks); err == nil && st.Mode()&os.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tor did not open its SOCKS socket %s", socks)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s, socks
}

// The SOCKS socket takes onion addresses only: anything else is refused by
// tor itself (reply 2), never resolved or connected to; a malformed onion
// address gets tor's extended reply F6.
func TestSocksSocketOnionOnly(t *testing.T) {
	var b status.Board
	_, socks := isolatedTor(t, &b)
	d, err := proxy.SOCKS5("unix", socks, nil, &net.Dialer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for addr, want := range map[string]string{
		"example.com:80":  "connection not allowed by ruleset",
		"192.0.2.1:80":    "connection not allowed by ruleset",
		"aaaa.onion:5269": "unknown code: 246", // F6: invalid onion address
		"localhost:5269":  "connection not allowed by ruleset",
	} {
		c, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			t.Errorf("%s: connected", addr)
			continue
		}
		var ne *net.OpError
		if !errors.As(err, &ne) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want tor's reply %q", addr, err, want)
		}
	}
}
