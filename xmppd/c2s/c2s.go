// Package c2s accepts client connections and negotiates them (RFC 6120):
// STARTTLS or direct TLS (XEP-0368), SASL SCRAM with channel binding and
// XEP-0474 downgrade protection, resource binding. SASL2 (XEP-0388) with
// Bind 2 (XEP-0386), FAST tokens (XEP-0484) and inline stream management
// logs a phone in, binds and resumes in one or two round trips
// (sasl2.go). Once bound, a connection becomes a session and its stanzas
// go to the server hub.
package c2s

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/idle"
	"github.com/hearthchat/hearth/xmppd/sasl"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
	"github.com/hearthchat/hearth/xmppd/tlsconf"
)

// Namespaces of negotiation.
const (
	nsTLS  = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSess = "urn:ietf:params:xml:ns:xmpp-session"
	nsCB   = "urn:xmpp:sasl-cb:0"
	nsSM   = "urn:xmpp:sm:3"
)

// Config is the c2s listener's configuration.
type Config struct {
	Server *server.Server
	Certs  *tlsconf.Certs
	Log    *slog.Logger
	// AuthTimeout is how long a connection has from accept to a bound
	// resource (RFC 6120 leaves it to us; 60 s like Prosody).
	AuthTimeout time.Duration
	// MaxUnauthPerIP caps connections from one address that have not
	// authenticated yet. 0 means no cap.
	MaxUnauthPerIP int
	// MaxUnauthOnion caps unauthenticated connections over the onion
	// listener, all of which come from tor's one address: with the
	// per-address cap, 20 silent strangers locked out every onion user.
	// 0 means no cap.
	MaxUnauthOnion int
	// OnionIdleTimeout closes an onion connection that has not
	// authenticated and sent nothing for this long (within AuthTimeout),
	// so silent strangers give their slots back sooner. 0: AuthTimeout only.
	OnionIdleTimeout time.Duration
	// StanzaTimeout bounds how long one stanza may take to arrive after
	// authentication, from its first byte to its last: an unfinished
	// stanza holds its bytes and tree (a probe: +2.8 MiB RSS per
	// connection for a 208 KB partial stanza, kept forever). 0: no bound.
	StanzaTimeout time.Duration
	// SaltKey keys the made-up SCRAM salts of names without an account
	// (sasl.Server.SaltKey); a per-box secret. Empty: a random key for
	// this process only.
	SaltKey []byte
	// ReadRate and ReadBurst shape each connection's reading (bytes/s).
	// 0 turns shaping off.
	ReadRate, ReadBurst int
	// MaxAuthAttempts per connection before it is closed.
	MaxAuthAttempts int
	// ParkIdle parks idle bound sessions on one epoll poller instead of a
	// goroutine each: about 40% less memory per idle session.
	ParkIdle bool
	// AllowPlain offers SASL PLAIN (over TLS only) for clients that know
	// nothing better. Off by default.
	AllowPlain bool
	// LoginAllowed, when set, is asked before a user's credentials are
	// looked up; false makes the login fail like an unknown name (xmppd:
	// nobody logs in before the box is claimed). nil allows everyone.
	LoginAllowed func(user string) bool
}

// DefaultConfig fills the limits with the values the issue settles on.
func DefaultConfig(srv *server.Server, certs *tlsconf.Certs, log *slog.Logger) Config {
	return Config{
		Server: srv, Certs: certs, Log: log,
		AuthTimeout: 60 * time.Second, MaxUnauthPerIP: 20,
		// Tor users share one address: room for a crowd, but an idle
		// stranger is dropped after 20 s (a login over Tor exchanges a
		// few round trips of a second or two each).
		MaxUnauthOnion: 200, OnionIdleTimeout: 20 * time.Second,
		StanzaTimeout: 30 * time.Second,
		ReadRate:      48 << 10, ReadBurst: 320 << 10, MaxAuthAttempts: 5,
	}
}

// C2S serves client connections.
type C2S struct {
	cfg    Config
	ips    *ipLimits
	auth   *sasl.Server
	poller *idle.Poller // nil where parking is unavailable
	// tls is shared by every connection: one per connection cost 1.2 KiB
	// of each idle session's memory (the bench's heap profile), and each
	// connection's own session-ticket keys meant no TLS session could ever
	// be resumed on a later connection.
	tls *tls.Config

	mu      sync.Mutex
	conns   map[*conn]struct{}
	stopped bool
	wg      sync.WaitGroup
}

// New returns a c2s service.
func New(cfg Config) *C2S {
	c := &C2S{cfg: cfg, ips: newIPLimits(), conns: map[*conn]struct{}{}}
	if cfg.Certs != nil {
		c.tls = cfg.Certs.Config("xmpp-client")
	}
	c.auth = &sasl.Server{Lookup: c.credentials, Prep: prepUser, SaltKey: cfg.SaltKey}
	if len(c.auth.SaltKey) == 0 {
		c.auth.SaltKey = make([]byte, 32)
		rand.Read(c.auth.SaltKey)
	}
	if srv := cfg.Server; srv != nil && srv.Store != nil {
		// Devices and FAST tokens (sasl2.go) go with the account. (A
		// password change ends the tokens by itself: store/fast.go.)
		srv.OnAccountDeleted(func(user string) {
			if err := srv.Store.DeleteDevices(user); err != nil {
				cfg.Log.Error("delete devices", "user", user, "err", err)
			}
		})
	}
	if !cfg.ParkIdle {
		// Every connection keeps its reader goroutine.
	} else if p, err := idle.NewPoller(); err == nil {
		c.poller = p
	} else {
		cfg.Log.Info("idle connections keep a goroutine", "reason", err)
	}
	return c
}

// Serve accepts connections on ln until it is closed. directTLS selects
// XEP-0368 (TLS from the first byte) instead of STARTTLS.
func (c *C2S) Serve(ln net.Listener, directTLS bool) error {
	return c.serve(ln, directTLS, "")
}

// OnionBucket is the source every connection from the onion listener is
// counted as. tor hands us all of them from 127.0.0.1, so counting them by
// address would put strangers on the Tor network in the same bucket as
// the box's own health check; instead they share one bucket of their own
// (with its own, larger cap, MaxUnauthOnion), and nothing that arrives
// over Tor is ever treated as local.
const OnionBucket = "onion"

// ServeOnion accepts connections that tor forwards from the onion service
// (STARTTLS, as on 5222: passwords still travel inside TLS). Their
// connections are counted under OnionBucket, their SASL failures per
// account name (see backoffKey).
func (c *C2S) ServeOnion(ln net.Listener) error {
	return c.serve(ln, false, OnionBucket)
}

func (c *C2S) serve(ln net.Listener, directTLS bool, bucket string) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: back off instead
				// of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c.wg.Add(1) // done by conn.done, possibly on another goroutine
		go c.handle(nc, directTLS, bucket)
	}
}

// Shutdown tells every client the server is going away and waits (up to
// timeout) for their connections to close.
func (c *C2S) Shutdown(timeout time.Duration) {
	c.mu.Lock()
	c.stopped = true
	conns := make([]*conn, 0, len(c.conns))
	for x := range c.conns {
		conns = append(conns, x)
	}
	c.mu.Unlock()
	for _, x := range conns {
		x.shutdown()
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

type conn struct {
	c       *C2S
	raw     net.Conn
	idle    *idle.Conn // raw, when it can be parked
	pmu     sync.Mutex
	pclosed bool
	gen     uint64 // the session generation this connection carries
	// clean: the stream ended on purpose (the client closed it, or we sent
	// a stream error), so the session must not hibernate.
	clean  bool
	nc     net.Conn // raw, or the TLS connection over it
	tlsc   *tls.Conn
	p      *stream.Parser
	ip     string
	direct bool
	// overTLS: TLS is under this stream (after STARTTLS, direct TLS, or
	// a transport that arrived over HTTPS). Only then may a password
	// travel (SASL PLAIN); a WebSocket over plain HTTP on the LAN gets
	// SCRAM only, whose exchange never carries the password.
	overTLS bool
	// tlsState is the TLS under a transport handed in by ServeConn (a
	// WebSocket's HTTPS connection), for channel binding.
	tlsState *tls.ConnectionState

	mu         sync.Mutex // guards writes before a session exists
	headerSent bool
	secure     bool
	user       string // set by SASL success
	sess       *session.Session
	scram      *sasl.Scram
	attempts   int
	unauth     bool
	offerPlus  bool
	// cbRefused: the client tried -PLUS with a binding type we lack. Its
	// retry with the "y" flag is then a fallback we caused, not a downgrade
	// by an attacker.
	cbRefused bool
	cbRetries int // -PLUS failures not counted as attempts (maxCBRetries)
	// mechs and cbTypes are the SASL mechanisms and channel-binding types
	// the features advertised (XEP-0474 hashes them into SCRAM).
	mechs, cbTypes []string
	a2             *auth2 // a SASL2 exchange in progress (sasl2.go)
	pre            *server.PreAuth
	// authDeadline is when the connection must be bound (zero: never).
	authDeadline time.Time

	// slow fires when a stanza started after authentication takes longer
	// than StanzaTimeout; armed only while one is unfinished (see
	// stanzaClock), so an idle session has no timer.
	slow      *time.Timer
	slowArmed bool
	ended     atomic.Bool
}

// handle serves one connection. bucket, when set, replaces the source
// address for limits and logs (see OnionBucket).
func (c *C2S) handle(raw net.Conn, direct bool, bucket string) {
	ip, _, _ := net.SplitHostPort(raw.RemoteAddr().String())
	if bucket != "" {
		ip = bucket
	}
	x := &conn{c: c, raw: raw, nc: raw, ip: ip, direct: direct}
	if c.poller != nil {
		if w := idle.Wrap(raw); w != nil {
			x.idle, x.raw, x.nc = w, w, w
		}
	}
	limit := c.cfg.MaxUnauthPerIP
	if bucket == OnionBucket {
		limit = c.cfg.MaxUnauthOnion
	}
	if !x.admit(limit) {
		return
	}
	if x.direct {
		if err := x.handshake(); err != nil {
			x.finish()
			return
		}
	} else {
		x.p = stream.NewParser(x.reader(x.nc), stream.PreAuthLimits)
	}
	x.loop()
}

// admit counts a new connection against its source's cap of
// unauthenticated connections and starts its auth clock; false: refused
// (closed and done).
func (x *conn) admit(limit int) bool {
	c := x.c
	if !c.ips.admit(x.ip, limit) {
		c.cfg.Log.Warn("too many unauthenticated connections", "ip", x.ip)
		x.raw.Close()
		c.wg.Done()
		return false
	}
	x.unauth = true
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		x.raw.Close()
		c.ips.release(x.ip)
		c.wg.Done()
		return false
	}
	c.conns[x] = struct{}{}
	c.mu.Unlock()
	if c.cfg.AuthTimeout > 0 {
		x.authDeadline = time.Now().Add(c.cfg.AuthTimeout)
	}
	x.extendPreAuth()
	return true
}

// Transport describes a connection that another transport has already
// set up: XMPP over WebSocket (RFC 7395), whose TLS, if any, is the
// HTTPS connection's and which never offers STARTTLS (§3.3.3). The
// connection carries the same byte stream as TCP (the transport
// translates its framing); negotiation, SASL, binding, resumption,
// limits, shaping and stream errors are c2s's own.
type Transport struct {
	// IP is the source address that limits and logs use.
	IP string
	// TLS is the connection state of the TLS under the transport, nil
	// for none (plain HTTP on the LAN: SCRAM only, never PLAIN).
	TLS *tls.ConnectionState
}

// ServeConn serves one connection of another transport and returns when
// it has ended, or when its bound session parks: a connection that is
// idle.Parkable (a WebSocket over TCP) parks on the poller like a TCP
// one, its reads of the TCP connection switched to non-blocking at bind.
func (c *C2S) ServeConn(nc net.Conn, t Transport) {
	c.wg.Add(1)
	x := &conn{c: c, raw: nc, nc: nc, ip: t.IP, secure: true, overTLS: t.TLS != nil, tlsState: t.TLS}
	if p, ok := nc.(idle.Parkable); ok && c.poller != nil {
		x.idle = p.Idle() // nil: reads block, as before
	}
	if !x.admit(c.cfg.MaxUnauthPerIP) {
		return
	}
	x.p = stream.NewParser(x.reader(x.nc), stream.PreAuthLimits)
	x.loop()
}

// done is the end of a connection, whoever ran its last step.
func (x *conn) done() {
	c := x.c
	c.mu.Lock()
	delete(c.conns, x)
	c.mu.Unlock()
	if x.unauth {
		c.ips.release(x.ip)
	}
	c.wg.Done()
}

func (x *conn) reader(r io.Reader) io.Reader {
	if x.c.cfg.ReadRate > 0 {
		r = newShaper(r, x.c.cfg.ReadRate, x.c.cfg.ReadBurst)
	}
	if x.c.cfg.StanzaTimeout > 0 {
		r = &stanzaClock{x: x, r: r}
	}
	return r
}

// loop reads and handles elements until the connection ends, or, for a
// bound session with nothing to read, parks it: the goroutine returns and
// the poller starts a new one when bytes arrive.
func (x *conn) loop() {
	for {
		ev, err := x.p.Next()
		if err == idle.ErrWouldBlock {
			x.p.Release()
			// Parking and closing exclude each other, so a closed
			// descriptor (whose number a new connection may get) is
			// never registered.
			x.pmu.Lock()
			if !x.pclosed && x.c.poller.Park(x.idle, x.loop) == nil {
				x.pmu.Unlock()
				return
			}
			x.pmu.Unlock()
			// Closed, or could not park: an ordinary read sees the end.
			x.idle.SetNonblocking(false)
			continue
		}
		if err != nil {
			x.c.cfg.Log.Debug("c2s read ended", "ip", x.ip, "err", err)
			var se *stream.Error
			if errors.As(err, &se) {
				x.streamError(se.Condition, se.Text)
			} else if isTimeout(err) && x.sess == nil {
				x.streamError("connection-timeout", "authentication took too long")
			}
			x.end()
			return
		}
		x.stanzaDone()
		switch ev.Kind {
		case stream.Open:
			if !x.open(ev.El) {
				x.end()
				return
			}
			x.extendPreAuth()
			continue
		case stream.Close:
			x.clean = true
			x.closeStream()
			x.end()
			return
		}
		if !x.element(ev.El) {
			x.end()
			return
		}
		x.extendPreAuth()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (x *conn) finish() {
	defer x.done()
	if sess := x.sess; sess != nil {
		srv := x.c.cfg.Server
		switch {
		case !x.clean && !sess.ClosedOnPurpose() && sess.Detach(x.gen):
			// XEP-0198: the connection died — whether the reader or the
			// writer saw it first (a phone after the write timeout) — and
			// was not closed on purpose: the session waits to be resumed
			// (or expires and ends then).
			srv.Hibernated(sess)
		default:
			// Ends it once, whoever else tries (shutdown, the
			// resumption timer); a no-op if it was resumed on a newer
			// connection, which then is not ours to close either (once
			// ended it can no longer be resumed, so Gen is final).
			srv.EndSessionAt(sess, x.gen)
			if sess.Gen() != x.gen {
				break
			}
			sess.CloseWithError("", "")
			// Wait for the writer to flush and close, but not forever.
			select {
			case <-sess.Done():
			case <-time.After(5 * time.Second):
				sess.Kill()
			}
		}
		x.forget()
		return
	}
	x.forget()
	x.nc.Close()
}

// forget unregisters the descriptor from the poller before it is closed.
// It may run after the session's close already did so (and closed the
// descriptor, whose number a new connection may have now): only the first
// call counts.
func (x *conn) forget() {
	if x.idle != nil && x.c.poller != nil {
		x.pmu.Lock()
		if !x.pclosed {
			x.pclosed = true
			x.c.poller.Forget(x.idle)
		}
		x.pmu.Unlock()
	}
}

// shutdown is called from another goroutine at server shutdown.
func (x *conn) shutdown() {
	x.mu.Lock()
	sess := x.sess
	x.mu.Unlock()
	if sess != nil {
		sess.CloseWithError("system-shutdown", "")
		return
	}
	x.raw.Close()
}

// write sends bytes directly; only before a session exists.
func (x *conn) write(b []byte) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sess != nil {
		x.sess.SendRaw(b)
		return nil
	}
	x.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := x.nc.Write(b)
	return err
}

func (x *conn) send(el *stream.Element) error {
	return x.write(el.Append(nil, stream.NSClient))
}

func (x *conn) header(id string) []byte {
	h := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + stream.NSStream +
		"' from='" + x.c.cfg.Server.Domain + "' version='1.0' xml:lang='en'"
	if id != "" {
		h += " id='" + id + "'"
	}
	return []byte(h + ">")
}

// streamError sends a stream error (preceded by our header if we had not
// sent one yet, RFC 6120 §4.9.1.1) and closes the stream.
func (x *conn) streamError(cond, text string) {
	x.clean = true
	if x.sess != nil {
		x.sess.CloseWithError(cond, text)
		return
	}
	var b []byte
	if !x.headerSent {
		b = x.header("")
		x.headerSent = true
	}
	b = append(b, session.StreamError(cond, text)...)
	x.write(b)
}

func (x *conn) closeStream() {
	if x.sess != nil {
		return // finish closes the session's stream after its queue
	}
	x.write([]byte("</stream:stream>"))
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// stanza handles a top-level element of a bound session.
func (x *conn) stanza(el *stream.Element) bool {
	srv := x.c.cfg.Server
	if el.Space == stream.NSClient {
		switch el.Local {
		case "message", "presence", "iq":
		default:
			x.streamError("unsupported-stanza-type", "")
			return false
		}
		if f := el.Get("from"); f != "" && f != x.sess.JID.String() {
			// Another account is a spoof: invalid-from (RFC 6120
			// §4.9.3.10). Another resource of this account is a stale
			// one, and the server stamps the right full JID anyway
			// (FromClient), as Prosody does: Converse 14 sends, right
			// after resuming a session on a page reload, a message from
			// the resource it would have bound, and refusing it lost
			// that message (it logs in again and never resends).
			j, err := jid.Parse(f)
			if err != nil || !j.Bare().Equal(x.sess.JID.Bare()) {
				x.streamError("invalid-from", "")
				return false
			}
		}
		if el.Local == "iq" && el.Get("type") == "set" && el.Child(nsSess, "session") != nil &&
			(el.Get("to") == "" || el.Get("to") == srv.Domain) {
			// RFC 3921 session establishment: a no-op kept for old clients.
			x.sess.Send(stream.New(stream.NSClient, "iq", "type", "result", "id", el.Get("id")))
			return true
		}
		srv.FromClient(x.sess, el)
		// Counted once handled: an acknowledgement (XEP-0198) covers
		// only stanzas whose effects, storage included, are done.
		x.sess.CountIn()
		return !x.sess.Closing()
	}
	if h := srv.Nonza(el.Space); h != nil {
		h(x.sess, el)
		return !x.sess.Closing()
	}
	x.streamError("unsupported-stanza-type", "")
	return false
}
