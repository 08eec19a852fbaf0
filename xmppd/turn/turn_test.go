package turn

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	pion "github.com/pion/turn/v4"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestCredentials(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := Issue(secret, "alice", now, TTL)
	if !strings.HasSuffix(c.Username, ":alice") || !c.Expires.Equal(now.Add(TTL)) {
		t.Fatalf("credential %+v", c)
	}
	acct, pass, err := check(secret, c.Username, now.Add(TTL-time.Second))
	if err != nil || acct != "alice" || pass != c.Password {
		t.Fatalf("check: %q %q %v", acct, pass, err)
	}
	if _, _, err := check(secret, c.Username, now.Add(TTL)); !errors.Is(err, errExpired) {
		t.Errorf("at expiry: %v, want expired", err)
	}
	// A forged credential: the right shape, made with another secret (or
	// the expiry moved later): the password the server expects differs.
	forged := Issue([]byte("another secret, 32 bytes long!!!"), "alice", now, TTL)
	if _, pass, _ := check(secret, forged.Username, now); pass == forged.Password {
		t.Error("a password made with another secret is accepted")
	}
	later := fmt.Sprintf("%d:alice", now.Add(2*TTL).Unix())
	if _, pass, _ := check(secret, later, now); pass == c.Password {
		t.Error("moving the expiry keeps the password valid")
	}
	for _, u := range []string{"", "alice", ":alice", "123:", "abc:alice", "-5:alice", "+99999999999:alice",
		fmt.Sprintf("%d:alice", now.Add(MaxTTL+time.Hour).Unix()), "99999999999999999999999:alice"} {
		if _, _, err := check(secret, u, now); err == nil {
			t.Errorf("username %q accepted", u)
		}
	}
}

func TestPeerPolicy(t *testing.T) {
	box, router := netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("192.168.1.1")
	p := &PeerPolicy{LAN: true, Self: func() []netip.Addr { return []netip.Addr{box, router} }}
	noLAN := &PeerPolicy{Self: p.Self}
	for _, tc := range []struct {
		addr       string
		lan, nolan bool
	}{
		{"8.8.8.8", true, true},
		{"2001:db8::1", true, true},
		{"192.168.1.20", true, false}, // a phone at home
		{"10.0.0.5", true, false},
		{"100.64.1.1", true, false},
		{"fd00::1", true, false},
		{"192.168.1.10", false, false}, // the box itself
		{"::ffff:192.168.1.10", false, false},
		{"192.168.1.1", false, false}, // the router's admin pages
		{"127.0.0.1", false, false},
		{"127.9.9.9", false, false},
		{"::1", false, false},
		{"::ffff:127.0.0.1", false, false},
		{"0.0.0.0", false, false},
		{"0.1.2.3", false, false},
		{"::", false, false},
		{"169.254.1.1", false, false},
		{"fe80::1", false, false},
		{"224.0.0.251", false, false},     // mDNS
		{"239.255.255.250", false, false}, // SSDP
		{"ff02::fb", false, false},
		{"255.255.255.255", false, false},
		{"240.0.0.1", false, false},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := p.Permit(a); got != tc.lan {
			t.Errorf("LAN allowed: Permit(%s) = %v", a, got)
		}
		if got := noLAN.Permit(a); got != tc.nolan {
			t.Errorf("LAN refused: Permit(%s) = %v", a, got)
		}
	}
	allow := &PeerPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	if !allow.Permit(netip.MustParseAddr("127.0.0.2")) || allow.Permit(netip.MustParseAddr("127.0.0.1")) {
		t.Error("Allow prefix not applied exactly")
	}
}

// start runs a server on loopback with a random relay range; peers on
// 127.0.0.2 are allowed (the tests' stand-in for a phone elsewhere).
func start(t *testing.T, mod func(*Config)) *Server {
	t.Helper()
	var s *Server
	var err error
	for try := 0; try < 5; try++ {
		first := 20000 + rand.IntN(30000)
		cfg := Config{Realm: "hearth.test", Secret: secret, Listen: "127.0.0.1:0",
			RelayFirst: first, RelayLast: first + 9,
			Peers: &PeerPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}}
		if mod != nil {
			mod(&cfg)
		}
		if s, err = Start(cfg); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type client struct {
	*pion.Client
	conn net.PacketConn
}

func dial(t *testing.T, s *Server, user, pass string) *client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", s.Port())
	c, err := pion.NewClient(&pion.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr,
		Conn: conn, Username: user, Password: pass, Realm: "hearth.test", RTO: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return &client{c, conn}
}

func code(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

func TestAllocateAndRefuse(t *testing.T) {
	s := start(t, func(c *Config) {
		c.RelayIP = func() net.IP { return net.IPv4(127, 0, 0, 1) }
		c.AccountOK = func(a string) bool { return a != "gone" }
	})
	now := time.Now()
	good := s.Credential("alice")
	c := dial(t, s, good.Username, good.Password)
	// STUN needs no credential.
	if a, err := c.SendBindingRequest(); err != nil || !strings.HasPrefix(a.String(), "127.0.0.1:") {
		t.Fatalf("binding: %v %v", a, err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("allocate with a good credential: %v", err)
	}
	ra := relay.LocalAddr().(*net.UDPAddr)
	if ra.Port < s.cfg.RelayFirst || ra.Port > s.cfg.RelayLast {
		t.Errorf("relay port %d outside %d-%d", ra.Port, s.cfg.RelayFirst, s.cfg.RelayLast)
	}
	// Relayed data reaches an allowed peer.
	peer, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relay.WriteTo([]byte("hello"), peer.LocalAddr()); err != nil {
		t.Fatalf("write to an allowed peer: %v", err)
	}
	buf := make([]byte, 64)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" || from.(*net.UDPAddr).Port != ra.Port {
		t.Fatalf("peer got %q from %v: %v", buf[:n], from, err)
	}
	// The box itself (loopback: its admin API, its own TURN port) is
	// refused: the permission request fails and nothing is sent.
	self, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	for _, to := range []net.Addr{self.LocalAddr(), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: s.Port()}} {
		if err := c.CreatePermission(to); err == nil {
			t.Errorf("permission to %v granted", to)
		}
		relay.WriteTo([]byte("x"), to)
	}
	self.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := self.ReadFrom(buf); err == nil {
		t.Errorf("a refused peer received %q", buf[:n])
	}

	for _, tc := range []struct{ name, user, pass string }{
		{"forged password", good.Username, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"another account's password", Issue(secret, "bob", now, TTL).Username, good.Password},
		{"expired", Issue(secret, "alice", now.Add(-2*TTL), TTL).Username, Issue(secret, "alice", now.Add(-2*TTL), TTL).Password},
		{"deleted account", Issue(secret, "gone", now, TTL).Username, Issue(secret, "gone", now, TTL).Password},
		{"not a REST username", "alice", password(secret, "alice")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// pion/turn v4.1.4 answers a refused credential with 400
			// Bad Request (internal/server/util.go), not RFC 5389's 401
			// after the first challenge; refused either way, and
			// clients do not retry a 400.
			c := dial(t, s, tc.user, tc.pass)
			if _, err := c.Allocate(); code(err) != 400 {
				t.Fatalf("allocate: %v, want 400", err)
			}
		})
	}
}

func TestAllocationQuota(t *testing.T) {
	s := start(t, func(c *Config) { c.PerAccount, c.PerIP = 2, 3 })
	alice := s.Credential("alice")
	var relays []net.PacketConn
	for i := 0; i < 2; i++ {
		r, err := dial(t, s, alice.Username, alice.Password).Allocate()
		if err != nil {
			t.Fatalf("allocation %d: %v", i+1, err)
		}
		relays = append(relays, r)
	}
	// A flood from one account: each further allocation is refused with
	// 486 and takes no relay port.
	for i := 0; i < 20; i++ {
		if _, err := dial(t, s, alice.Username, alice.Password).Allocate(); code(err) != 486 {
			t.Fatalf("allocation %d over the cap: %v, want 486", i+3, err)
		}
	}
	// Another member on another address is unaffected; on the same
	// address (one home's NAT) the per-address cap applies.
	bob := s.Credential("bob")
	r, err := dial(t, s, bob.Username, bob.Password).Allocate()
	if err != nil {
		t.Fatalf("bob: %v", err)
	}
	relays = append(relays, r)
	carol := s.Credential("carol")
	if _, err := dial(t, s, carol.Username, carol.Password).Allocate(); code(err) != 486 {
		t.Fatalf("4th allocation from one address: %v, want 486", err)
	}
	// Released allocations free the quota and leave no counters behind.
	for _, r := range relays {
		r.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.quota.size() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("quota still tracks %d entries after every allocation ended", s.quota.size())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := dial(t, s, alice.Username, alice.Password).Allocate(); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// TestTCPConnectionCap: idle TCP connections from one address beyond the
// per-address cap are closed at once and the ones held are released when
// they close; a TURN client over TCP still works meanwhile from another
// address.
func TestTCPConnectionCap(t *testing.T) {
	s := start(t, func(c *Config) { c.TCPPerIP, c.TCPConns = 3, 10 })
	addr := fmt.Sprintf("127.0.0.1:%d", s.Port())
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitUntil(t, "3 connections held", func() bool { return s.tcp.open() == 3 })
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
			t.Errorf("connection %d over the cap: %v, want closed at once", i+4, err)
		}
		c.Close()
	}
	// Another address (127.0.0.3 is loopback too) gets a TURN allocation
	// over TCP.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}}
	tc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cred := s.Credential("bob")
	c, err := pion.NewClient(&pion.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr,
		Conn: pion.NewSTUNConn(tc), Username: cred.Username, Password: cred.Password, Realm: "hearth.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Allocate(); err != nil {
		t.Errorf("allocation over TCP from another address: %v", err)
	}
	c.Close()
	tc.Close()
	for _, c := range held {
		c.Close()
	}
	waitUntil(t, "every connection released", func() bool { return s.tcp.open() == 0 })
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
