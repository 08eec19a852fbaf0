// Package socks5 is the XEP-0065 SOCKS5 bytestreams proxy at
// proxy.<domain>: two members' apps that cannot reach each other
// directly (both behind home routers) each connect to the box, and the
// box joins the two connections once the sender activates the stream.
//
// It is for members only: the proxy's address goes only to local
// accounts, and only a local initiator can activate a stream, with the
// hash XEP-0065 defines (SHA-1 of sid, initiator and target JIDs), so
// strangers who connect to the port get nothing joined. A connection
// nobody activates is closed after PendingTimeout. Connections at once
// (waiting or joined) are capped by MaxConns and each direction of a
// stream by Rate bytes per second, so the box's uplink and memory stay
// bounded whatever clients do.
package socks5

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// NS is XEP-0065's namespace.
const NS = "http://jabber.org/protocol/bytestreams"

// Config configures the proxy.
type Config struct {
	// Listener accepts the SOCKS5 connections; the proxy owns it.
	Listener net.Listener
	// Host (asked on each request: the box's LAN address can change)
	// and Port are what members are told to connect to (Port 0: the
	// listener's port).
	Host func() string
	Port int
	// MaxConns caps connections at once, waiting or joined (default 32:
	// 16 transfers).
	MaxConns int
	// Rate caps each direction of a stream in bytes per second (default
	// 2 MiB/s).
	Rate int
	// PendingTimeout closes a connection nobody activates (default 60 s);
	// IdleTimeout a joined stream with no data either way (default 5 min).
	PendingTimeout, IdleTimeout time.Duration
	Log                         *slog.Logger
}

// Proxy is a running proxy.
type Proxy struct {
	cfg Config
	srv *server.Server

	mu      sync.Mutex
	conns   int                   // open connections, waiting or joined
	pending map[string][]*waiting // by destination hash
	open    map[net.Conn]struct{} // every connection, for Close
	closed  bool
	wg      sync.WaitGroup
}

type waiting struct {
	conn  net.Conn
	timer *time.Timer
}

// Serve starts the proxy for srv at proxy.<domain> and serves until
// Close.
func Serve(srv *server.Server, cfg Config) *Proxy {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 32
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 2 << 20
	}
	if cfg.PendingTimeout <= 0 {
		cfg.PendingTimeout = time.Minute
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = srv.Log
	}
	if cfg.Port == 0 {
		cfg.Port = cfg.Listener.Addr().(*net.TCPAddr).Port
	}
	p := &Proxy{cfg: cfg, srv: srv, pending: map[string][]*waiting{}, open: map[net.Conn]struct{}{}}
	svc := srv.AddService("proxy."+srv.Domain, "File transfer proxy")
	svc.AddIdentity(server.Identity{Category: "proxy", Type: "bytestreams", Name: "File transfer proxy"})
	svc.AddFeature(NS)
	svc.HandleIQ("get", NS, "query", p.streamhost)
	svc.HandleIQ("set", NS, "query", p.activate)
	p.wg.Add(1)
	go p.accept()
	return p
}

// Close stops accepting and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.cfg.Listener.Close()
	p.wg.Wait()
}

// Conns is the number of open connections (tests, health).
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

func (p *Proxy) streamhost(st *server.Stanza) (*stream.Element, error) {
	if !p.srv.LocalSender(st) {
		return nil, server.ErrForbidden
	}
	return stream.New(NS, "query").Add(stream.New(NS, "streamhost",
		"jid", "proxy."+p.srv.Domain, "host", p.cfg.Host(), "port", strconv.Itoa(p.cfg.Port))), nil
}

// activate joins the two connections that announced
// SHA1(sid + initiator + target): the initiator is the sender of the iq,
// so nobody can join a stream for others.
func (p *Proxy) activate(st *server.Stanza) (*stream.Element, error) {
	if !p.srv.LocalSender(st) || st.From.Resourcepart() == "" {
		return nil, server.ErrForbidden
	}
	q := st.El.FirstChild()
	sid := q.Get("sid")
	target, err := jid.Parse(q.ChildText(NS, "activate"))
	if sid == "" || err != nil || target.Resourcepart() == "" {
		return nil, server.ErrBadRequest
	}
	h := Hash(sid, st.From.String(), target.String())
	p.mu.Lock()
	w := p.pending[h]
	if p.closed {
		p.mu.Unlock()
		return nil, server.ErrServiceUnavailable
	}
	if len(w) != 2 {
		p.mu.Unlock()
		// XEP-0065 §6.3.4: not (yet) both connected.
		return nil, server.ErrItemNotFound
	}
	delete(p.pending, h)
	for _, x := range w {
		x.timer.Stop()
	}
	p.wg.Add(1) // under the lock: Close cannot be waiting yet
	p.mu.Unlock()
	go p.join(w[0].conn, w[1].conn)
	return nil, nil
}

// Hash is the SOCKS5 destination XEP-0065 §5.3.2 defines.
func Hash(sid, initiator, target string) string {
	s := sha1.Sum([]byte(sid + initiator + target))
	return hex.EncodeToString(s[:])
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.cfg.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		p.mu.Lock()
		full := p.closed || p.conns >= p.cfg.MaxConns
		if !full {
			p.conns++
			p.open[c] = struct{}{}
		}
		p.mu.Unlock()
		if full {
			// Refused before reading a byte: a flood of connections
			// costs no goroutine and no buffer.
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.handshake(c)
	}
}

func (p *Proxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	if _, ok := p.open[c]; ok {
		delete(p.open, c)
		p.conns--
	}
	p.mu.Unlock()
}

// handshake reads RFC 1928's greeting and CONNECT request the way
// XEP-0065 uses them: no authentication, address type domain name
// carrying the 40 hex digits of the hash, port 0. Anything else is
// refused and closed.
func (p *Proxy) handshake(c net.Conn) {
	defer p.wg.Done()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	hash, err := readRequest(c)
	if err != nil {
		p.cfg.Log.Debug("socks5: refused", "remote", c.RemoteAddr(), "err", err)
		p.drop(c)
		return
	}
	p.mu.Lock()
	if p.closed || len(p.pending[hash]) >= 2 {
		p.mu.Unlock()
		c.Write([]byte{5, 2, 0, 3, 0, 0, 0}) // not allowed by ruleset
		p.drop(c)
		return
	}
	w := &waiting{conn: c}
	w.timer = time.AfterFunc(p.cfg.PendingTimeout, func() { p.expire(hash, w) })
	p.pending[hash] = append(p.pending[hash], w)
	p.mu.Unlock()
	reply := append([]byte{5, 0, 0, 3, byte(len(hash))}, hash...)
	if _, err := c.Write(append(reply, 0, 0)); err != nil {
		p.expire(hash, w)
		return
	}
	c.SetDeadline(time.Time{})
}

func (p *Proxy) expire(hash string, w *waiting) {
	p.mu.Lock()
	l := p.pending[hash]
	for i, x := range l {
		if x == w {
			l = append(l[:i:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(p.pending, hash)
	} else {
		p.pending[hash] = l
	}
	p.mu.Unlock()
	p.drop(w.conn)
}

var (
	errVersion = errors.New("not SOCKS5")
	errMethod  = errors.New("no acceptable authentication method")
	errRequest = errors.New("not a CONNECT to a 40-digit hash")
)

func readRequest(c net.Conn) (string, error) {
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil {
		return "", err
	}
	if b[0] != 5 || b[1] == 0 {
		return "", errVersion
	}
	methods := make([]byte, b[1])
	if _, err := io.ReadFull(c, methods); err != nil {
		return "", err
	}
	ok := false
	for _, m := range methods {
		ok = ok || m == 0
	}
	if !ok {
		c.Write([]byte{5, 0xff})
		return "", errMethod
	}
	if _, err := c.Write([]byte{5, 0}); err != nil {
		return "", err
	}
	req := make([]byte, 5)
	if _, err := io.ReadFull(c, req); err != nil {
		return "", err
	}
	if req[0] != 5 || req[1] != 1 || req[3] != 3 || req[4] != 40 {
		c.Write([]byte{5, 7, 0, 3, 0, 0, 0}) // command not supported
		return "", errRequest
	}
	rest := make([]byte, 40+2)
	if _, err := io.ReadFull(c, rest); err != nil {
		return "", err
	}
	hash := string(rest[:40])
	for _, r := range hash {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			c.Write([]byte{5, 4, 0, 3, 0, 0, 0}) // host unreachable
			return "", errRequest
		}
	}
	return hash, nil
}

// join copies both ways until either side ends, then closes both.
func (p *Proxy) join(a, b net.Conn) {
	defer p.wg.Done()
	done := make(chan struct{}, 2)
	var last atomic.Int64 // either direction's latest data, for the idle timeout
	last.Store(time.Now().UnixNano())
	for _, d := range [][2]net.Conn{{a, b}, {b, a}} {
		go func() {
			p.copy(d[0], d[1], &last)
			done <- struct{}{}
		}()
	}
	<-done
	p.drop(a)
	p.drop(b)
	<-done
}

// copy moves src to dst at most cfg.Rate bytes per second: it reads at
// most a tenth of a second's worth at a time and sleeps when ahead of the
// schedule since the start.
//
// The idle timeout counts both directions: a file goes one way, and the
// quiet way back must not end the transfer.
func (p *Proxy) copy(dst, src net.Conn, last *atomic.Int64) {
	chunk := min(32<<10, max(p.cfg.Rate/10, 512))
	buf := make([]byte, chunk)
	start := time.Now()
	var sent int64
	for {
		src.SetReadDeadline(time.Now().Add(p.cfg.IdleTimeout))
		n, err := src.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			sent += int64(n)
			due := start.Add(time.Duration(sent * int64(time.Second) / int64(p.cfg.Rate)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < p.cfg.IdleTimeout {
			continue
		}
		if err != nil {
			return
		}
	}
}
