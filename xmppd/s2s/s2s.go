// Package s2s is server-to-server XMPP (RFC 6120): the connections that
// carry stanzas between this box and other XMPP domains.
//
// Outbound, a stanza for another domain (the server's StanzaRemote hook)
// joins that domain's queue (queue.go); one goroutine per domain finds the
// peer (SRV _xmpps-server / _xmpp-server, else the domain on 5269;
// dial.go), requires TLS, authenticates with SASL EXTERNAL when the peer
// offers it and trusts our certificate, else with Server Dialback
// (XEP-0220; keys as in XEP-0185, dialback.go), and writes the queue.
// Failures are retried with back-off for a bounded time; after it every
// queued stanza goes back to its sender as an error.
//
// Inbound (in.go), a peer must start TLS before anything else, then
// authenticate each domain it speaks for by certificate (EXTERNAL) or
// dialback (we connect back to its authoritative server to verify the
// key); stanzas before that end the stream, and a stanza from any other
// domain ends it with invalid-from. Stanzas in are routed into the server
// like any other (server.Route), with the same parser and limits as c2s.
//
// XEP-0478: inbound streams announce our stanza limit and idle time; a
// stanza larger than a peer announced bounces to its sender
// (policy-violation) instead of costing the stream.
//
// Queued messages are stored before their senders' acknowledgements cover
// them and queued again after a restart (durable.go); a written stanza is
// kept until the link has stayed up a while after it, and written again
// if the link ends first (queue.go: at least once, not exactly once —
// XEP-0198 on s2s would make it exact).
//
// XEP-0288 bidirectional streams (bidi.go): one connection carries both
// directions when the peer offers or asks for it.
//
// The federation policy (Config.Policy: off, block and allow lists) may
// change while federation runs; PolicyChanged closes the links with
// domains it now refuses, both ways, and bounces their queues (policy.go).
//
// Not done yet (issue 14): whitespace
// keepalives (TCP keepalives only; a link idle for IdleTimeout
// is closed); XEP-0198 on s2s. Onion domains go through tor (onion.go).
package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
	"github.com/hearthchat/hearth/xmppd/tlsconf"
)

// Namespaces.
const (
	NSServer   = "jabber:server"
	NSDialback = "jabber:server:dialback"
	nsDBFeat   = "urn:xmpp:features:dialback"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsLimits   = "urn:xmpp:stream-limits:0" // XEP-0478
)

// ErrRemoteTimeout is the bounce of a stanza whose domain could not be
// reached within the retry time.
var ErrRemoteTimeout = server.Err("wait", "remote-server-timeout")

// Config configures federation.
type Config struct {
	Server *server.Server
	Certs  *tlsconf.Certs
	Log    *slog.Logger
	// Secret keys our dialback keys (a per-box secret from crypto/rand,
	// kept in the store).
	Secret []byte
	// Roots verify peers' certificates; nil: the system roots.
	Roots *x509.CertPool
	// Resolver looks up SRV records and addresses; nil: the system's.
	Resolver *net.Resolver
	// AllowLocal lets SRV targets and domains resolve to loopback,
	// link-local or this machine's own addresses (tests; off on the box:
	// otherwise anybody could make the box talk to its own local pages).
	AllowLocal bool
	// Policy says whether a domain may be talked to (both ways); nil
	// allows every domain. It may change while federation runs (the
	// admin's block list, federation turned off): call PolicyChanged
	// after it did (policy.go).
	Policy func(domain string) bool
	// Port is the fallback port when a domain has no SRV records (5269).
	Port int
	// NoClientCert keeps our certificate out of outbound TLS, so peers
	// must use dialback (tests of the dialback path).
	NoClientCert bool

	// Queue caps per remote domain, and in all. The byte caps count
	// stanzas as written to peers; a queue holds those bytes and about
	// 200 more per stanza (TestQueuedMemory).
	MaxQueue, MaxQueueBytes, MaxTotalBytes int
	// MaxDomains caps the remote domains with a queue or a connection at
	// once (each has a goroutine): a member writing to 1,000 made-up
	// domains that never answer gets errors beyond it, not 1,000 dials.
	MaxDomains int
	// RetryFor is how long a domain that cannot be reached is retried
	// before its queue bounces; RetryMin/RetryMax bound the back-off.
	RetryFor, RetryMin, RetryMax time.Duration
	// DialTimeout bounds one connection attempt's TCP connect;
	// NegotiateTimeout its TLS and authentication.
	DialTimeout, NegotiateTimeout time.Duration
	// IdleTimeout closes a connection (either way) with nothing to carry.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a peer (DefaultWriteTimeout).
	WriteTimeout time.Duration
	// AuthTimeout bounds an inbound connection's time to authenticate.
	AuthTimeout time.Duration
	// MaxStanzaBytes is the largest inbound stanza after authentication
	// (default: c2s's, stream.PostAuthLimits), announced to peers
	// (XEP-0478).
	MaxStanzaBytes int
	// StanzaTimeout bounds how long one inbound stanza may take to
	// arrive, first byte to last (as c2s's: an unfinished stanza holds its
	// bytes and tree).
	StanzaTimeout time.Duration
	// MaxUnauthPerIP caps inbound connections from one address that have
	// not authenticated yet (as c2s's), so strangers cannot hold every
	// socket and the connect-backs they trigger. 0: 20; -1: no cap.
	MaxUnauthPerIP int
	// Onion is federation with .onion domains through tor (onion.go).
	Onion Onion
}

// Defaults fills the zero fields.
func (c *Config) defaults() {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Port == 0 {
		c.Port = 5269
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = 1000
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = 1 << 20
	}
	if c.MaxTotalBytes == 0 {
		c.MaxTotalBytes = 16 << 20
	}
	if c.MaxDomains == 0 {
		c.MaxDomains = 256
	}
	if c.RetryFor == 0 {
		c.RetryFor = 5 * time.Minute
	}
	if c.RetryMin == 0 {
		c.RetryMin = 2 * time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = time.Minute
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 15 * time.Second
	}
	if c.NegotiateTimeout == 0 {
		c.NegotiateTimeout = 30 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = 60 * time.Second
	}
	if c.MaxStanzaBytes == 0 {
		c.MaxStanzaBytes = stream.PostAuthLimits.MaxBytes
	}
	if c.StanzaTimeout == 0 {
		c.StanzaTimeout = 30 * time.Second
	}
	if c.MaxUnauthPerIP == 0 {
		c.MaxUnauthPerIP = 20
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
}

// S2S is federation for one server.
type S2S struct {
	cfg    Config
	domain string // ours, lower case
	inTLS  *tls.Config
	ctx    context.Context
	stop   context.CancelFunc

	mu      sync.Mutex
	remotes map[string]*remote
	total   int // queued bytes over all domains
	conns   map[net.Conn]struct{}
	unauth  map[string]int // unauthenticated inbound connections by address
	closed  bool
	wg      sync.WaitGroup
	bidi    bidiTable // XEP-0288 streams our queues may write on (bidi.go)
	// ins are the inbound streams that authenticated a domain (policy.go);
	// policyCh is closed when the policy changes (PolicyChanged).
	ins      map[*inConn]struct{}
	policyCh chan struct{}

	nextID  atomic.Uint64  // the last stored queue record's ID (durable.go)
	pending sync.WaitGroup // store writes enqueued and not done yet
}

// New starts federation: stanzas for other domains go out from now on.
// Serve takes inbound connections.
func New(cfg Config) *S2S {
	cfg.defaults()
	if cfg.Roots == nil {
		if p, err := x509.SystemCertPool(); err == nil {
			cfg.Roots = p
		} else {
			cfg.Roots = x509.NewCertPool()
		}
	}
	s := &S2S{cfg: cfg, domain: strings.ToLower(cfg.Server.Domain), remotes: map[string]*remote{}, conns: map[net.Conn]struct{}{}, unauth: map[string]int{},
		ins: map[*inConn]struct{}{}, policyCh: make(chan struct{})}
	s.ctx, s.stop = context.WithCancel(context.Background())
	if cfg.Certs != nil {
		s.inTLS = cfg.Certs.Config("xmpp-server")
		// Asked, not required: a peer without a certificate may still
		// use dialback; one it sends is checked by name (certValid).
		s.inTLS.ClientAuth = tls.RequestClientCert
	}
	// Below the invites module's rule for limited members (1000), the
	// blocking module's, and a component's domain (500): whatever they
	// refuse or take never reaches the network.
	s.restore()
	cfg.Server.Hook(server.StanzaRemote, 100, s.route)
	return s
}

// Roots returns the system roots plus the PEM certificates in caFile
// ("" for none): a test CA, or a private one an operator trusts.
func Roots(caFile string) (*x509.CertPool, error) {
	p, err := x509.SystemCertPool()
	if err != nil {
		p = x509.NewCertPool()
	}
	if caFile == "" {
		return p, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("s2s: CA file: %w", err)
	}
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("s2s: CA file %s: no certificates", caFile)
	}
	return p, nil
}

// Resolver returns a resolver that asks the DNS server at addr (host:port)
// only: a test's own authoritative server for its zone.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// postAuth is the parser limits of an authenticated inbound stream.
func (s *S2S) postAuth() stream.Limits {
	l := stream.PostAuthLimits
	l.MaxBytes = s.cfg.MaxStanzaBytes
	return l
}

// Close stops federation: connections close; queued messages stay stored
// for the next start, other queued stanzas bounce (remote-server-timeout)
// while the server can still route them.
func (s *S2S) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	// Our store writes land before the store closes. No new ones start:
	// route adds under s.mu once closed is false, and the queue
	// goroutines have ended.
	done := make(chan struct{})
	go func() { s.pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cfg.Log.Warn("s2s: queue records still being written when federation stopped")
	}
}

func (s *S2S) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *S2S) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// rename copies el with every element in namespace from moved to to (a
// stanza and its content-namespace children such as <body/>: jabber:client
// inside the server, jabber:server on the wire).
func rename(el *stream.Element, from, to string) *stream.Element {
	c := el.Copy()
	var walk func(*stream.Element)
	walk = func(e *stream.Element) {
		if e.Space == from {
			e.Space, e.Prefix = to, ""
		}
		for _, n := range e.Nodes {
			if n.El != nil {
				walk(n.El)
			}
		}
	}
	walk(c)
	return c
}

var errClosed = errors.New("s2s: closed")
