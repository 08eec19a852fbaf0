//go:build e2e

package extdisco_test

import (
	"bufio"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/turn"
)

// TestCoturnClients: slixmpp asks the box for its services over XEP-0215
// as a calling app does; coturn's own test clients (Debian coturn) then
// use what it got against the box's STUN/TURN server: a STUN binding, a
// relayed exchange with coturn's echo peer, and the refusals — a forged
// and an expired credential, a peer on the box itself, and one account
// flooding allocations while another still gets through.
func TestCoturnClients(t *testing.T) {
	for _, p := range []string{"/usr/bin/python3", "turnutils_uclient", "turnutils_stunclient", "turnutils_peer"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is needed (make test-deps: python3-slixmpp, coturn): %v", p, err)
		}
	}
	var dir state.Dir
	d := xmpptest.Start(t, func(o *xmppd.Options) { withTURN(o); dir = o.State })
	if d.TURN == nil {
		t.Fatal("TURN did not start")
	}
	_, c2s, _ := strings.Cut(d.C2STLSAddr.String(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	out, err := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "services.py"),
		"--port", c2s, "--domain", xmpptest.Domain, "--ca", filepath.Join(dir.TLS(), "cert.pem"),
		"--user", "alice:alice-pw", "--user", "bob:bob-pw").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\nOK") {
		t.Fatalf("slixmpp: %v\n%s", err, out)
	}
	type svc struct{ Type, Transport, Host, Port, Username, Password, Expires string }
	got := map[string][]svc{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "SERVICES "); ok {
			user, js, _ := strings.Cut(rest, " ")
			var l []svc
			if err := json.Unmarshal([]byte(js), &l); err != nil {
				t.Fatal(err)
			}
			got[user] = l
		}
	}
	find := func(user, typ, transport string) svc {
		for _, s := range got[user] {
			if s.Type == typ && s.Transport == transport {
				return s
			}
		}
		t.Fatalf("%s: no %s/%s service in %+v", user, typ, transport, got[user])
		return svc{}
	}
	stun := find("alice", "stun", "udp")
	alice, aliceTCP, bob := find("alice", "turn", "udp"), find("alice", "turn", "tcp"), find("bob", "turn", "udp")
	if stun.Host != "127.0.0.1" || stun.Port != strconv.Itoa(d.TURN.Port()) || alice.Username == bob.Username {
		t.Fatalf("services: %+v", got)
	}

	// STUN: coturn's client learns its own address.
	sout, err := exec.CommandContext(ctx, "turnutils_stunclient", "-p", stun.Port, stun.Host).CombinedOutput()
	if err != nil || !strings.Contains(string(sout), "127.0.0.1") {
		t.Fatalf("turnutils_stunclient: %v\n%s", err, sout)
	}

	// coturn's echo peer on 127.0.0.2 (the tests' stand-in for a phone
	// elsewhere; the server allows it explicitly, loopback otherwise is
	// the box itself).
	peerPort := 30000 + rand.IntN(20000)
	peer := exec.CommandContext(ctx, "turnutils_peer", "-L", "127.0.0.2", "-p", strconv.Itoa(peerPort))
	if err := peer.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { peer.Process.Kill(); peer.Wait() }()
	waitUDP(t, "127.0.0.2", peerPort)

	uclient := func(s svc, user, pass, peerIP string, extra ...string) (string, error) {
		args := append([]string{"-c", "-n", "20", "-l", "200", "-z", "5", "-p", s.Port,
			"-u", user, "-w", pass, "-e", peerIP, "-r", strconv.Itoa(peerPort)}, extra...)
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		out, err := exec.CommandContext(cctx, "turnutils_uclient", append(args, s.Host)...).CombinedOutput()
		return string(out), err
	}
	relayed := func(out string) bool { return strings.Contains(out, "Total lost packets 0 (0.000000%)") }

	t.Run("relay over UDP", func(t *testing.T) {
		out, err := uclient(alice, alice.Username, alice.Password, "127.0.0.2")
		if err != nil || !relayed(out) {
			t.Fatalf("uclient: %v\n%s", err, out)
		}
	})
	t.Run("relay over TCP", func(t *testing.T) {
		out, err := uclient(aliceTCP, aliceTCP.Username, aliceTCP.Password, "127.0.0.2", "-t")
		if err != nil || !relayed(out) {
			t.Fatalf("uclient -t: %v\n%s", err, out)
		}
	})
	secret, err := d.Store.Secret("turn")
	if err != nil {
		t.Fatal(err)
	}
	expired := turn.Issue(secret, "alice", time.Now().Add(-turn.TTL-time.Minute), turn.TTL)
	// The refusals as coturn's client reports them: pion/turn v4.1.4
	// answers a refused credential with 400 (not RFC 5389's 401) and a
	// refused peer's ChannelBind with 401 (not RFC 5766's 403); either
	// way the client gets nothing through.
	for _, tc := range []struct{ name, user, pass, peer, want string }{
		{"forged password", alice.Username, "c2VjcmV0IGd1ZXNzZWQgYnkgYW4gYXR0YWNrZXI=", "127.0.0.2", "error 400"},
		{"bob's password on alice's name", alice.Username, bob.Password, "127.0.0.2", "error 400"},
		{"expired credential", expired.Username, expired.Password, "127.0.0.2", "error 400"},
		{"peer on the box itself", alice.Username, alice.Password, "127.0.0.1", "channel bind: error 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := uclient(alice, tc.user, tc.pass, tc.peer)
			if err == nil || relayed(out) || !strings.Contains(out, tc.want) {
				t.Fatalf("want refused with %q: %v\n%s", tc.want, err, tail(out, 10))
			}
		})
	}
	t.Run("allocation flood", func(t *testing.T) {
		// 12 clients of one account at once: the account's cap (4)
		// refuses the rest; bob is unaffected meanwhile.
		flood := exec.CommandContext(ctx, "turnutils_uclient", "-c", "-m", "12", "-n", "200", "-z", "20",
			"-p", alice.Port, "-u", alice.Username, "-w", alice.Password, "-e", "127.0.0.2", "-r", strconv.Itoa(peerPort), alice.Host)
		var fout strings.Builder
		flood.Stdout, flood.Stderr = &fout, &fout
		if err := flood.Start(); err != nil {
			t.Fatal(err)
		}
		out, err := uclient(bob, bob.Username, bob.Password, "127.0.0.2")
		ferr := flood.Wait()
		if err != nil || !relayed(out) {
			t.Errorf("bob during alice's flood: %v\n%s", err, tail(out, 20))
		}
		if ferr == nil && relayed(fout.String()) {
			t.Errorf("12 allocations of one account all served:\n%s", fout.String())
		}
		t.Logf("flood: %v\n%s", ferr, tail(fout.String(), 15))
	})
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// waitUDP waits until something listens on ip:port (turnutils_peer
// answers nothing to a stray datagram, so ask the kernel: a connected
// UDP socket gets ECONNREFUSED while nobody listens).
func waitUDP(t *testing.T, ip string, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("udp4", net.JoinHostPort(ip, strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0})
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return // no ICMP refusal: bound
		}
		if err == nil {
			return
		}
	}
	t.Fatalf("turnutils_peer did not bind %s:%d", ip, port)
}
