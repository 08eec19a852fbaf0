// Package turn is the box's STUN/TURN server (RFC 5389/5766) for calls
// through NAT, on pion/turn: UDP and TCP on one port (3478), relays from
// a small UDP port range that netconf maps on the router, time-limited
// credentials in the TURN REST shared-secret scheme (creds.go) that
// xmppd hands to local members through XEP-0215 (xmppd/mod/extdisco),
// a cap on allocations per account and per client address (quota.go) and
// a peer policy that keeps the relay away from the box and the router
// (peers.go).
package turn

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/pion/logging"
	pion "github.com/pion/turn/v4"
)

// Config configures a Server.
type Config struct {
	// Realm is the TURN realm: the XMPP domain.
	Realm string
	// Secret is the REST shared secret (at least 16 bytes).
	Secret []byte
	// Listen is the address for both UDP and TCP ("0.0.0.0:3478"). With
	// port 0 one free port is picked that is free for both.
	Listen string
	// RelayBind is the address relay sockets bind to (default: the
	// Listen host, or 0.0.0.0).
	RelayBind string
	// RelayIP returns the address clients are told to send relayed
	// traffic to: the home's public address when the router forwards the
	// relay ports, else the box's LAN address. Asked at each allocation,
	// since the public address changes. Nil or a nil result: the bind
	// address.
	RelayIP func() net.IP
	// RelayFirst..RelayLast is the relay port range (both required).
	RelayFirst, RelayLast int
	// Peers decides where relays may send; nil means the default policy
	// (no LAN, nothing of the box's own).
	Peers *PeerPolicy
	// PerAccount and PerIP cap live allocations (defaults 4 and 8).
	PerAccount, PerIP int
	// TCPConns and TCPPerIP cap TURN-over-TCP connections (defaults 64
	// and 8; tcplimit.go).
	TCPConns, TCPPerIP int
	// AccountOK reports whether an account may still use its credentials
	// (it exists and is not removed); nil: any.
	AccountOK func(account string) bool
	Log       *slog.Logger
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// Server is a running STUN/TURN server.
type Server struct {
	cfg   Config
	pion  *pion.Server
	udp   net.PacketConn
	tcp   *limitListener
	quota *quota
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if len(cfg.Secret) < 16 {
		return nil, errors.New("turn: secret shorter than 16 bytes")
	}
	if cfg.RelayFirst <= 0 || cfg.RelayLast < cfg.RelayFirst || cfg.RelayLast > 65535 {
		return nil, fmt.Errorf("turn: relay range %d-%d", cfg.RelayFirst, cfg.RelayLast)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PerAccount <= 0 {
		cfg.PerAccount = 4
	}
	if cfg.PerIP <= 0 {
		cfg.PerIP = 8
	}
	if cfg.TCPConns <= 0 {
		cfg.TCPConns = 64
	}
	if cfg.TCPPerIP <= 0 {
		cfg.TCPPerIP = 8
	}
	if cfg.Peers == nil {
		cfg.Peers = &PeerPolicy{}
	}
	udp, ln, err := listenBoth(cfg.Listen)
	if err != nil {
		return nil, err
	}
	// Longer than pion's longest allocation lifetime (RFC 5766 §6.2's
	// one hour cap), so a quiet client with a live allocation stays.
	tcp := newLimitListener(ln, cfg.TCPConns, cfg.TCPPerIP, 61*time.Minute)
	if cfg.RelayBind == "" {
		cfg.RelayBind = "0.0.0.0"
		if h, _, _ := net.SplitHostPort(cfg.Listen); h != "" && h != "::" {
			cfg.RelayBind = h
		}
	}
	s := &Server{cfg: cfg, udp: udp, tcp: tcp, quota: newQuota(cfg.PerAccount, cfg.PerIP)}
	s.quota.nowFunc = cfg.Now
	gen := &relays{bind: cfg.RelayBind, first: cfg.RelayFirst, last: cfg.RelayLast, advertise: cfg.RelayIP}
	logs := logging.NewDefaultLoggerFactory()
	logs.DefaultLogLevel = logging.LogLevelWarn
	s.pion, err = pion.NewServer(pion.ServerConfig{
		Realm:         cfg.Realm,
		AuthHandler:   s.auth,
		QuotaHandler:  s.quota.admit,
		LoggerFactory: logs,
		EventHandler: pion.EventHandler{
			OnAllocationCreated: func(src, _ net.Addr, _, username, _ string, relay net.Addr, _ int) {
				s.quota.created(src, username)
				cfg.Log.Debug("turn: allocation", "client", src, "user", username, "relay", relay)
			},
			OnAllocationDeleted: func(src, _ net.Addr, _, username, _ string) {
				s.quota.deleted(src, username)
			},
		},
		PacketConnConfigs: []pion.PacketConnConfig{{
			PacketConn: udp, RelayAddressGenerator: gen, PermissionHandler: cfg.Peers.handler,
		}},
		ListenerConfigs: []pion.ListenerConfig{{
			Listener: tcp, RelayAddressGenerator: gen, PermissionHandler: cfg.Peers.handler,
		}},
	})
	if err != nil {
		udp.Close()
		tcp.Close()
		return nil, fmt.Errorf("turn: %w", err)
	}
	return s, nil
}

// listenBoth opens UDP and TCP on the same port.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("turn: listen %q: %w", addr, err)
	}
	for try := 0; try < 20; try++ {
		udp, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("turn: listen udp %s: %w", addr, err)
		}
		p := strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)
		tcp, err := net.Listen("tcp4", net.JoinHostPort(host, p))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if port != "0" {
			return nil, nil, fmt.Errorf("turn: listen tcp %s: %w", addr, err)
		}
	}
	return nil, nil, fmt.Errorf("turn: no port free for both UDP and TCP on %s", host)
}

// Port is the UDP and TCP port.
func (s *Server) Port() int { return s.udp.LocalAddr().(*net.UDPAddr).Port }

// Close stops the server and every allocation.
func (s *Server) Close() error { return s.pion.Close() }

// TTL is how long issued credentials last: long enough for a call, short
// enough that a credential copied out of a phone stops working soon.
const TTL = 6 * time.Hour

// Credential issues a credential for a local account.
func (s *Server) Credential(account string) Credential {
	return Issue(s.cfg.Secret, account, s.cfg.Now(), TTL)
}

// auth is pion's AuthHandler: it recomputes the password for the username
// and gives pion the long-term key; pion compares MESSAGE-INTEGRITY and
// refuses a forged one. An expired, malformed or far-future username, or
// one of an account that is gone, is refused too. (pion v4.1.4 refuses
// with 400 Bad Request where RFC 5389 says 401; clients give up either
// way, which is what we want.)
func (s *Server) auth(username, realm string, src net.Addr) ([]byte, bool) {
	acct, pass, err := check(s.cfg.Secret, username, s.cfg.Now())
	if err != nil {
		s.cfg.Log.Debug("turn: refused", "client", src, "err", err)
		return nil, false
	}
	if s.cfg.AccountOK != nil && !s.cfg.AccountOK(acct) {
		s.cfg.Log.Debug("turn: refused: no such account", "client", src, "account", acct)
		return nil, false
	}
	return pion.GenerateAuthKey(username, realm, pass), true
}

// relays allocates relay sockets in the configured range. Ours rather
// than pion's RelayAddressGeneratorPortRange: that one fixes the
// advertised address at start, but the home's public address is learnt
// later from the router and changes; and it accepts a requested port
// outside the range (EVEN-PORT/RESERVATION) that the router does not
// forward.
type relays struct {
	bind        string
	first, last int
	advertise   func() net.IP
}

var errNoTCPRelay = errors.New("turn: TCP relays (RFC 6062) are not offered")

func (r *relays) Validate() error { return nil }

func (r *relays) AllocatePacketConn(network string, requested int) (net.PacketConn, net.Addr, error) {
	ports := []int{requested}
	if requested == 0 {
		n := r.last - r.first + 1
		start := rand.IntN(n)
		ports = ports[:0]
		for i := 0; i < n; i++ {
			ports = append(ports, r.first+(start+i)%n)
		}
	} else if requested < r.first || requested > r.last {
		return nil, nil, fmt.Errorf("turn: port %d outside the relay range", requested)
	}
	for _, p := range ports {
		c, err := net.ListenPacket(network, net.JoinHostPort(r.bind, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		a := *c.LocalAddr().(*net.UDPAddr)
		if r.advertise != nil {
			if ip := r.advertise(); ip != nil {
				a.IP = ip
			}
		}
		return c, &a, nil
	}
	return nil, nil, fmt.Errorf("turn: all %d relay ports are in use", r.last-r.first+1)
}

func (r *relays) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errNoTCPRelay
}
