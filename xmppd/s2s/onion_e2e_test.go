//go:build e2e

package s2s

// Onion federation's dial path with Debian's tor: our dialer reaches an
// onion domain through tor's real SOCKS socket, as netconf configures it
// (netconf/onion, OnionTrafficOnly). tor must not reach the Tor network
// in a test, and with DisableNetwork 1 it opens no SOCKS listener at all
// ("Tor will not make or accept non-control network connections"), so it
// runs with its network on inside a network namespace of its own with
// nothing in it (unshare -n): it can reach nothing, it answers our
// request with its SOCKS reply after its SocksTimeout (5 s here), and the
// test's own DNS server on loopback shows that no name was looked up.
//
// Two Hearths federating over onion on one machine is not possible
// without the Tor network: an onion service is reached through
// descriptors on the network's directories and a rendezvous circuit;
// TestOnionFederationThroughSOCKS covers the rest of the path with a
// stand-in for tor.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cretz/bine/torutil"
	toredkey "github.com/cretz/bine/torutil/ed25519"

	"github.com/hearthchat/hearth/internal/testenv"
	"github.com/hearthchat/hearth/netconf/onion"
	"github.com/hearthchat/hearth/netconf/status"
)

type torTestLog struct{ t *testing.T }

func (l torTestLog) Write(p []byte) (int, error) {
	l.t.Logf("tor: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestOnionDialRealTor(t *testing.T) {
	testenv.NeedRoot(t, "tor runs in a network namespace of its own (unshare -n)")
	unshare := testenv.NeedCommand(t, "unshare", "util-linux")
	tor := testenv.NeedCommand(t, "tor", "apt package tor; make test-deps installs it")
	dir := filepath.Join(t.TempDir(), "tor")
	socks := filepath.Join(dir, "socks.sock")
	svc, err := onion.New(onion.Options{
		TorExe:  []string{unshare, "-n", tor, "--SocksTimeout", "5"},
		DataDir: dir, Reporter: &status.Board{}, Log: torTestLog{t},
		Ports:       []onion.Port{{Virtual: 5269, Target: "unix:" + filepath.Join(t.TempDir(), "onion-s2s.sock")}},
		SocksSocket: socks, StartTimeout: 45 * time.Second, BootstrapTimeout: 10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the onion service did not stop")
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st, err := os.Stat(socks); err == nil && st.Mode()&os.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tor did not open its SOCKS socket %s", socks)
		}
	}

	// Every query the test's DNS server gets is counted.
	dns := StartDNS(t)
	var queries atomic.Int32
	dns.Log = func(format string, args ...any) {
		queries.Add(1)
		t.Logf(format, args...)
	}
	dns.Host(t, "a.test", "192.0.2.1")
	s := &S2S{cfg: Config{Resolver: Resolver(dns.Addr), Onion: Onion{SOCKS: "unix:" + socks}}, conns: map[net.Conn]struct{}{}}
	s.cfg.defaults()

	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name := torutil.OnionServiceIDFromV3PublicKey(toredkey.FromCryptoPublicKey(pub)) + ".onion"
	start := time.Now()
	_, err = s.dial(context.Background(), "a.test", name)
	t.Logf("dial %s: %v after %v", name, err, time.Since(start))
	var de *net.DNSError
	var nf *errNotFound
	switch {
	case err == nil:
		t.Fatal("connected to an onion service without the Tor network")
	case errors.As(err, &de):
		t.Fatalf("a DNS error: %v", err)
	case !strings.Contains(err.Error(), "SOCKS reply 0x6"):
		// tor's SOCKS reply 6 (TTL expired): it found no way to the
		// service within its SocksTimeout (without a network it has no
		// directory).
		t.Fatalf("%v: want tor's SOCKS reply 6", err)
	case errors.As(err, &nf):
		t.Errorf("an unreachable onion service is not retried: %v", err)
	}
	if n := queries.Load(); n != 0 {
		t.Errorf("the DNS server got %d queries", n)
	}
	// The counting works: the same resolver's lookup reaches it.
	if _, err := s.cfg.Resolver.LookupIPAddr(context.Background(), "a.test"); err != nil || queries.Load() == 0 {
		t.Errorf("a lookup through the test's resolver: %v, %d queries counted", err, queries.Load())
	}
}
