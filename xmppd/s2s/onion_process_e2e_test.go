//go:build e2e

package s2s_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/s2s"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Two onion Hearths federate, each reaching the other only through its
// SOCKS port, each receiving on its onion listener: a cmd/xmppd process
// started with no onion flags at all (its defaults: tor's SOCKS socket at
// STATE/tor/socks.sock, the onion listener at STATE/onion-s2s.sock, both
// on once -s2s is) and an in-process box. A SOCKS5 server stands in for
// each tor (the real network is not reachable from a test; see
// onion_e2e_test.go for the real tor's side). Nobody asks DNS anything:
// both links and both dialback connect-backs go through SOCKS.
func TestOnionHearthProcess(t *testing.T) {
	w := newWorld(t)
	var queries atomic.Int32
	w.dns.Log = func(format string, args ...any) {
		queries.Add(1)
		t.Logf(format, args...)
	}
	bin := buildXmppd(t)
	nameA, nameB := newOnionName(t), newOnionName(t)

	// A's state directory as netconf's tor would leave it: the SOCKS
	// socket in the private tor folder.
	dirA := state.Dir(t.TempDir())
	if err := os.MkdirAll(dirA.Tor(), 0o700); err != nil {
		t.Fatal(err)
	}
	sockB := filepath.Join(t.TempDir(), "onion-s2s.sock")
	lnA, err := net.Listen("unix", dirA.TorSocks())
	if err != nil {
		t.Fatal(err)
	}
	forward := func(name, sock string) func(s2s.SOCKSRequest) (net.Conn, error) {
		return func(r s2s.SOCKSRequest) (net.Conn, error) {
			if r.AddrType != 3 || r.Host != name || r.Port != 5269 {
				t.Errorf("SOCKS request %+v, want domain name %s port 5269", r, name)
			}
			return net.Dial("unix", sock)
		}
	}
	socksA := s2s.ServeSOCKS(t, lnA, forward(nameB, sockB))
	socksB := s2s.StartSOCKS(t, forward(nameA, dirA.OnionS2S()))

	// A: the process. Certificates from the test CA, which neither side
	// trusts for the other (no CA issues one for an onion name here):
	// dialback authenticates both ways.
	w.ca.Issue(t, filepath.Join(dirA.TLS(), "cert.pem"), filepath.Join(dirA.TLS(), "key.pem"), nameA, "groups."+nameA, "upload."+nameA)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	out, err := exec.CommandContext(ctx, bin, "-state", string(dirA), "useradd", "alice", "alice-pw").CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	c2sTLS := freePort(t)
	cmd := exec.Command(bin, "-state", string(dirA), "-domain", nameA,
		"-c2s", "127.0.0.1:"+strconv.Itoa(freePort(t)), "-c2s-tls", "127.0.0.1:"+strconv.Itoa(c2sTLS), "-c2s-onion", "none",
		"-web", "none", "-web-tls", "none", "-turn", "none", "-proxy65", "none",
		"-s2s", "127.0.0.1:"+strconv.Itoa(freePort(t)), "-s2s-dns", w.dns.Addr, "-debug")
	var outA bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outA, &outA
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("xmppd output (tail):\n%s", tailLines(outA.String(), 200))
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("unix", dirA.OnionS2S())
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("xmppd's onion s2s socket (its default) does not answer: %v", err)
		}
	}

	// B: in process; any DNS lookup fails the test.
	bLog := &logBuf{t: t}
	b := &box{domain: nameB, log: bLog}
	b.d = xmpptest.Start(t, func(o *xmppd.Options) {
		o.Domain = nameB
		w.ca.Issue(t, filepath.Join(o.State.TLS(), "cert.pem"), filepath.Join(o.State.TLS(), "key.pem"), nameB, "groups."+nameB, "upload."+nameB)
		o.S2S = xmppd.S2SOptions{Out: true, Onion: "unix:" + sockB, TorSOCKS: socksB.Addr,
			Tune: func(c *s2s.Config) {
				c.Log = slog.New(slog.NewTextHandler(bLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
				c.Resolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
					t.Errorf("the onion box asked DNS")
					return nil, &net.DNSError{Err: "test: no DNS here", IsNotFound: true}
				}}
			}}
	})

	alice := xmpptest.Dial(t, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: c2sTLS}, true)
	open(alice, nameA)
	if el := alice.Auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
		t.Fatalf("auth: %s", el)
	}
	open(alice, nameA)
	alice.Bind("r")
	alice.Send("<presence/>")
	bob := b.login(t, "bob")

	alice.Send("<message to='bob@" + nameB + "' type='chat' id='m1'><body>over onion</body></message>")
	expect(t, bob, "alice's message", message("alice@"+nameA+"/r", "bob@"+nameB))
	bob.Send("<message to='alice@" + nameA + "/r' type='chat' id='m2'><body>and back</body></message>")
	el := expect(t, alice, "bob's answer", message("bob@"+nameB+"/r", "alice@"+nameA))
	if got := el.ChildText(stream.NSClient, "body"); got != "and back" {
		t.Errorf("alice got %q", got)
	}

	if len(socksA.Requests()) == 0 || len(socksB.Requests()) == 0 {
		t.Errorf("SOCKS requests: A %v, B %v; want both", socksA.Requests(), socksB.Requests())
	}
	if n := queries.Load(); n != 0 {
		t.Errorf("the test's DNS server (xmppd's -s2s-dns) got %d queries", n)
	}
	if !bLog.has("auth=dialback") {
		t.Error("the links were not authenticated by dialback")
	}
}
