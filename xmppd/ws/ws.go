// Package ws is XMPP over WebSocket (RFC 7395) at /xmpp-websocket on the
// box's web server: another transport of c2s, not a second server. It
// translates RFC 7395's framing (<open/>, <close/>, one element per
// message) to the byte stream c2s reads on TCP and back; negotiation,
// SASL SCRAM (with channel binding over HTTPS), binding, stream
// management and its resumption across a page reload, the stanza limits,
// shaping, the stanza clock and the stream errors are c2s's, unchanged.
//
// What is WebSocket's own:
//   - Origin: a browser's page may open it only from one of the box's own
//     names (web's Host allowlist); a foreign Origin gets 403. A request
//     without Origin is no browser's and cannot be a cross-site one.
//   - No permessage-deflate: compression under TLS leaks secrets
//     (CRIME/BREACH class) and a deflate window costs 32 KiB or more per
//     connection. No extension is ever agreed, so a frame with a reserved
//     bit set is a protocol error.
//   - A message is never buffered whole: its bytes stream into c2s's
//     parser, which refuses a stanza over the limit (pre-auth or
//     post-auth) with a stream error; a message past MaxMessage+4 KiB is
//     closed with 1009 as a backstop. Two elements in one message, or a
//     message ending inside its element, is a stream error.
//   - The raw bytes are shaped like a TCP stream's (c2s.Shape), frame
//     headers included: a flood of empty continuation frames costs what
//     the same rate of stanza bytes costs, and the stanza clock (or the
//     auth deadline) ends a message that never finishes.
//   - Ping/pong keepalive: a peer that does not answer a ping within
//     PongTimeout is shut down (its session hibernates for resumption).
//   - SASL PLAIN is never offered or accepted without TLS under the
//     WebSocket (plain http://hearth.local on the LAN): SCRAM only, whose
//     exchange never carries the password.
//
// Idle sessions park like TCP ones: no goroutine, no buffer. That is why
// the RFC 6455 framing here is our own (frames.go) and not
// github.com/coder/websocket's, which the first version used: its reader
// blocks (no non-blocking read, per-message state that cannot be resumed
// from a poller), so every idle WebSocket session kept a reader goroutine,
// the parser's 2 KiB read buffer and the library's 4 KiB bufio reader and
// writer. Server RSS per idle WebSocket session at N=1000 (plain HTTP;
// bench/run.sh -servers hearth -skip idle,sat,rates,logins,offline
// -n-small 1000 -n-large 1000): 35.2 KiB with the library, 7.1 KiB with
// this (a parked TCP session, TLS included, is 15.5 KiB). Our reader keeps
// its frame state in a few dozen bytes, takes a pooled read buffer only
// while bytes are in flight, and returns idle.ErrWouldBlock between any
// two bytes, so c2s parks the connection on xmppd/idle's poller exactly as
// it parks TCP (idle.Parkable). The library's Accept could not be kept for
// the handshake alone: the Conn it returns owns the connection (a
// finalizer closes it) and holds the bufio pair, so the few lines of the
// opening handshake (RFC 6455 §4.2) are here too. The tests still dial
// with the library's client, and the e2e tests with @xmpp/client and
// Converse in Chromium, so the framing is checked against others'.
//
// Parking over HTTPS needs the web server's TLS to run over an idle.Conn
// (web wraps accepted connections, see xmppd/web); where it does not, or
// where there is no poller, the session keeps a blocking reader
// goroutine as before.
package ws

import (
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/xmppd/c2s"
	"github.com/hearthchat/hearth/xmppd/idle"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Path is where the endpoint is mounted (and what host-meta advertises).
const Path = "/xmpp-websocket"

// Config configures the endpoint.
type Config struct {
	C2S *c2s.C2S
	// OwnHost reports whether a host (an Origin's) is one of the box's
	// names; nil accepts only an Origin equal to the request's Host.
	OwnHost func(hostport string) bool
	// ReadRate and ReadBurst shape each connection's raw bytes (0: off).
	ReadRate, ReadBurst int
	// MaxMessage bounds one message (default: the post-auth stanza limit).
	MaxMessage int
	// PingInterval is how often an otherwise quiet peer is pinged, and
	// PongTimeout how long it has to answer.
	PingInterval, PongTimeout time.Duration
	Log                       *slog.Logger
}

// Handler serves RFC 7395 connections.
type Handler struct {
	cfg Config
}

// New returns the endpoint's handler.
func New(cfg Config) *Handler {
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = stream.PostAuthLimits.MaxBytes
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Minute
	}
	if cfg.PongTimeout <= 0 {
		cfg.PongTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Handler{cfg: cfg}
}

func (h *Handler) originOK(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return h.cfg.OwnHost != nil && h.cfg.OwnHost(u.Host)
}

func offersXMPP(r *http.Request) bool {
	return hasToken(r.Header, "Sec-WebSocket-Protocol", "xmpp")
}

// hasToken reports whether a comma-separated header lists token (case
// folded: Connection and Upgrade tokens are case-insensitive, and "xmpp"
// is the only subprotocol we look for).
func hasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), token) {
				return true
			}
		}
	}
	return false
}

// checkUpgrade checks the opening handshake (RFC 6455 §4.2.1) and returns
// the client's key, or the status to refuse it with.
func checkUpgrade(w http.ResponseWriter, r *http.Request) (string, int, string) {
	if r.Method != http.MethodGet {
		return "", http.StatusMethodNotAllowed, "WebSocket handshake must be GET"
	}
	if !r.ProtoAtLeast(1, 1) || !hasToken(r.Header, "Connection", "upgrade") || !hasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		return "", http.StatusUpgradeRequired, "WebSocket upgrade required"
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return "", http.StatusUpgradeRequired, "WebSocket version 13 required"
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return "", http.StatusBadRequest, "one Sec-WebSocket-Key required"
	}
	key := strings.TrimSpace(keys[0])
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		return "", http.StatusBadRequest, "bad Sec-WebSocket-Key"
	}
	return key, 0, ""
}

// acceptKey is Sec-WebSocket-Accept for key (RFC 6455 §4.2.2).
func acceptKey(key string) string {
	s := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(s[:])
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.originOK(r) {
		http.Error(w, "This page may not connect to the chat server.", http.StatusForbidden)
		return
	}
	if !offersXMPP(r) {
		// RFC 7395 §3.1: the subprotocol is "xmpp".
		http.Error(w, "WebSocket subprotocol xmpp required", http.StatusBadRequest)
		return
	}
	key, code, msg := checkUpgrade(w, r)
	if code != 0 {
		http.Error(w, msg, code)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "WebSocket needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	nc, brw, err := hj.Hijack()
	if err != nil {
		h.cfg.Log.Debug("ws: hijack", "ip", ip, "err", err)
		return
	}
	// The HTTP server's ReadTimeout would end every WebSocket a minute
	// after its request.
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: "+acceptKey(key)+"\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n")
	nc.SetDeadline(time.Time{})
	if err != nil {
		nc.Close()
		return
	}
	c := h.newConn(nc)
	// Bytes the HTTP server read past the request (a client that sent its
	// first frame without waiting for the 101) are the first to read;
	// brw and its 4 KiB buffers are dropped after.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		c.pre = append([]byte(nil), b...)
	}
	c.keepalive()
	h.cfg.C2S.ServeConn(c, c2s.Transport{IP: ip, TLS: r.TLS})
}

func (h *Handler) newConn(nc net.Conn) *conn {
	c := &conn{h: h, local: nc.LocalAddr(), remote: nc.RemoteAddr()}
	switch x := nc.(type) {
	case *net.TCPConn:
		// Plain HTTP: reads and writes go through idle's wrapper, whose
		// reads c2s switches to non-blocking once the session is bound.
		if ic := idle.Wrap(x); ic != nil {
			c.ic, nc = ic, ic
		}
	case *tls.Conn:
		// HTTPS: parkable only if the web server put TLS over an
		// idle.Conn (a record half received then stays in crypto/tls
		// across the park; see idle's TLS test).
		if ic, ok := x.NetConn().(*idle.Conn); ok {
			c.ic = ic
		}
	}
	c.nc = nc
	c.src = nc
	if h.cfg.ReadRate > 0 {
		c.src = c2s.Shape(nc, h.cfg.ReadRate, h.cfg.ReadBurst)
	}
	c.fr.limit = int64(h.cfg.MaxMessage) + 4096
	return c
}

// conn is the WebSocket as the net.Conn c2s and the session use.
type conn struct {
	h             *Handler
	nc            net.Conn   // the hijacked connection (TLS or TCP)
	src           io.Reader  // nc's reads, shaped
	ic            *idle.Conn // TCP under nc when reads can go non-blocking
	local, remote net.Addr

	// Read side: only the c2s reader touches these.
	fr     frameReader
	pre    []byte  // read by the HTTP server past the request
	rb     *[]byte // read-ahead, only while it holds bytes (see release)
	rr, rw int
	rs     int    // rsHead, rsBody, rsDrain
	head   []byte // the start of a message until its first tag is known
	check  frameCheck
	out    []byte // translated bytes not yet returned
	then   []byte // <open/>'s or <close/>'s translation, after rsDrain

	wmu       sync.Mutex // the session's writer, c2s before a session, pongs, pings
	frames    outFrames
	closeSent bool
	// peerClosed: the peer's close frame arrived (and was answered), so
	// Close need not wait for anything.
	peerClosed atomic.Bool

	kmu      sync.Mutex
	timer    *time.Timer
	waiting  bool // a ping is out, no pong yet
	stopped  bool
	closeErr error
	once     sync.Once
}

// Idle is the TCP connection c2s parks on the poller (idle.Parkable).
func (c *conn) Idle() *idle.Conn { return c.ic }

// Read states.
const (
	rsHead  = iota // a message's first bytes go to head
	rsBody         // the rest of a stanza's message goes to the caller
	rsDrain        // after <open/> or <close/>: white space only
)

// maxHead bounds what is read of a message to tell <open/> and <close/>
// from a stanza.
const maxHead = 4096

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.read(p)
	c.release()
	return n, err
}

// release gives the read-ahead buffer back when it holds nothing, before
// the reader returns (and perhaps parks): an idle session holds none.
func (c *conn) release() {
	if c.rb != nil && c.rr == c.rw {
		readBufs.Put(c.rb)
		c.rb, c.rr, c.rw = nil, 0, 0
	}
}

func (c *conn) read(p []byte) (int, error) {
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			if len(c.out) == 0 {
				c.out = nil
			}
			return n, nil
		}
		switch c.rs {
		case rsBody:
			n, eom, err := c.fr.payload(c, c, p)
			if n > 0 {
				if cerr := c.check.feed(p[:n]); cerr != nil {
					return 0, cerr
				}
			}
			if err != nil {
				return 0, c.readErr(err)
			}
			if eom {
				c.rs = rsHead
				if cerr := c.check.end(); cerr != nil {
					return 0, cerr
				}
			}
			if n > 0 {
				return n, nil
			}
		case rsDrain:
			var b [256]byte
			n, eom, err := c.fr.payload(c, c, b[:])
			if err != nil {
				return 0, c.readErr(err)
			}
			if len(trimSpace(b[:n])) > 0 {
				return 0, errFrame("two elements in one WebSocket message (RFC 7395: one per message)")
			}
			if eom {
				c.out, c.then, c.rs = c.then, nil, rsHead
			}
		default:
			if err := c.readHead(); err != nil {
				return 0, err
			}
		}
	}
}

// readHead reads a message's first bytes until its first tag is complete:
// <open/> and <close/> become the stream's header and end, anything else
// is passed on as it arrives.
func (c *conn) readHead() error {
	if c.head == nil {
		c.head = make([]byte, 0, 256)
	} else if len(c.head) == cap(c.head) {
		c.head = append(c.head, make([]byte, cap(c.head))...)[:len(c.head)]
	}
	n, eom, err := c.fr.payload(c, c, c.head[len(c.head):cap(c.head)])
	c.head = c.head[:len(c.head)+n]
	if err != nil {
		// The head so far stays for the next read (after a park).
		return c.readErr(err)
	}
	head := c.head
	b := trimSpace(head)
	if !eom && len(head) < maxHead && (len(b) == 0 || (b[0] == '<' && tagEnd(b) < 0)) {
		return nil
	}
	c.head = nil
	if el := framingElement(head); el != nil {
		t := []byte("</stream:stream>")
		if el.Local == "open" {
			t = streamHeader(el)
		}
		if eom {
			c.out = t
		} else {
			c.then, c.rs = t, rsDrain
		}
		return nil
	}
	c.check = frameCheck{}
	if err := c.check.feed(head); err != nil {
		return err
	}
	if eom {
		if err := c.check.end(); err != nil {
			return err
		}
	} else {
		c.rs = rsBody
	}
	c.out = head
	return nil
}

// readErr turns what the frame reader found into what c2s should see.
func (c *conn) readErr(err error) error {
	var pe *protoError
	switch {
	case err == idle.ErrWouldBlock:
	case errors.Is(err, errBinary):
		return &stream.Error{Condition: "unsupported-encoding", Text: "RFC 7395: text messages only"}
	case errors.As(err, &pe):
		c.h.cfg.Log.Info("ws: closing", "remote", c.remote, "code", pe.code, "why", pe.text)
		c.sendClose(pe.code, "")
	}
	return err
}

// byteSource for the frame reader.

func (c *conn) buffered() []byte {
	if c.rb == nil {
		return nil
	}
	return (*c.rb)[c.rr:c.rw]
}

func (c *conn) consume(n int) { c.rr += n }

func (c *conn) fill() error {
	if c.rb == nil {
		c.rb = readBufs.Get().(*[]byte)
		c.rr, c.rw = 0, 0
	}
	if c.rr == c.rw {
		c.rr, c.rw = 0, 0
	}
	buf := *c.rb
	if len(c.pre) > 0 {
		n := copy(buf[c.rw:], c.pre)
		c.pre = c.pre[n:]
		if len(c.pre) == 0 {
			c.pre = nil
		}
		c.rw += n
		return nil
	}
	n, err := c.src.Read(buf[c.rw:])
	c.rw += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// control: the peer's control frames.

func (c *conn) ping(payload []byte) error {
	if err := c.writeControl(opPong, payload); err != nil {
		return err
	}
	return nil
}

func (c *conn) pong() {
	c.kmu.Lock()
	if c.waiting && !c.stopped {
		c.waiting = false
		c.timer.Reset(c.h.cfg.PingInterval)
	}
	c.kmu.Unlock()
}

// peerClose answers the peer's close frame with its code (RFC 6455
// §5.5.1); the reader then ends the connection.
func (c *conn) peerClose(payload []byte) {
	if len(payload) >= 2 {
		payload = payload[:2]
	}
	c.peerClosed.Store(true)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writeLocked(opClose, payload)
	c.closeSent = true
}

func (c *conn) writeControl(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(op, payload)
}

func (c *conn) writeLocked(op byte, payload []byte) error {
	if c.closeSent {
		return net.ErrClosed
	}
	var b [2 + maxControl]byte
	_, err := c.nc.Write(appendFrame(b[:0], op, payload))
	return err
}

// sendClose sends a close frame with code once; nothing is written after.
func (c *conn) sendClose(code uint16, reason string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writeLocked(opClose, append([]byte{byte(code >> 8), byte(code)}, reason...))
	c.closeSent = true
}

// Write frames what c2s and the session write (whole elements) as RFC 7395
// messages, all of one Write in one write of the connection.
func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return 0, net.ErrClosed
	}
	bp := writeBufs.Get().(*[]byte)
	out := (*bp)[:0]
	err := c.frames.split(b, func(m []byte) error {
		out = appendFrame(out, opText, m)
		return nil
	})
	if err == nil && len(out) > 0 {
		_, err = c.nc.Write(out)
	}
	if cap(out) <= maxPooled {
		*bp = out[:0]
		writeBufs.Put(bp)
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// keepalive pings the peer every PingInterval; one that does not answer
// within PongTimeout is shut down. A timer, not a goroutine.
func (c *conn) keepalive() {
	c.kmu.Lock()
	defer c.kmu.Unlock()
	c.timer = time.AfterFunc(c.h.cfg.PingInterval, c.tick)
}

func (c *conn) tick() {
	c.kmu.Lock()
	if c.stopped {
		c.kmu.Unlock()
		return
	}
	if c.waiting {
		c.kmu.Unlock()
		c.h.cfg.Log.Info("ws: no pong, closing", "remote", c.remote)
		c.shut()
		return
	}
	c.waiting = true
	c.timer.Reset(c.h.cfg.PongTimeout)
	c.kmu.Unlock()
	// A write that blocks (the peer reads nothing) is undone by shut
	// when the pong timeout fires.
	if err := c.writeControl(opPing, nil); err != nil && !errors.Is(err, net.ErrClosed) {
		c.shut()
	}
}

// shut ends a peer that stopped answering without closing the descriptor:
// shutdown(2) wakes its reader, parked on the poller or blocked, which
// reads the end and finishes the connection through c2s (forgotten by the
// poller before its close). Closing it here instead would leave a parked
// reader never woken (the kernel drops a closed descriptor from epoll
// silently) and could hand its number to a new connection while the
// poller still lists it.
func (c *conn) shut() {
	if t := tcpOf(c.nc); t != nil {
		t.CloseRead()
		t.CloseWrite()
		return
	}
	c.nc.Close()
}

func tcpOf(nc net.Conn) *net.TCPConn {
	for {
		switch x := nc.(type) {
		case *net.TCPConn:
			return x
		case *idle.Conn:
			nc = x.Conn
		case *tls.Conn:
			nc = x.NetConn()
		default:
			return nil
		}
	}
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.kmu.Lock()
		c.stopped = true
		c.timer.Stop()
		c.kmu.Unlock()
		// A writer stuck on a peer that reads nothing gives up the lock
		// at this deadline at the latest.
		c.nc.SetWriteDeadline(time.Now().Add(lingerTime))
		c.sendClose(closeNormal, "")
		if t := tcpOf(c.nc); t != nil && !c.peerClosed.Load() {
			t.CloseWrite()
			go c.linger(t)
			return
		}
		c.closeErr = c.nc.Close()
	})
	return c.closeErr
}

// lingerTime bounds the closing handshake.
const lingerTime = 2 * time.Second

// linger reads and drops what the peer still sends after our close frame
// (and FIN), until it closes too or lingerTime passes, then closes. Closing
// with its bytes unread would answer them with a reset, which can destroy
// the stream error and close frame before the peer reads them: a client
// still writing a message over the limit got "connection reset" instead of
// the policy-violation (TestMessageOverLimit under -race). One goroutine
// for at most lingerTime per closed connection, never while idle.
func (c *conn) linger(t *net.TCPConn) {
	t.SetReadDeadline(time.Now().Add(lingerTime))
	var b [512]byte
	for {
		if _, err := t.Read(b[:]); err != nil {
			break
		}
	}
	c.nc.Close()
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error      { return c.nc.SetDeadline(t) }
func (c *conn) SetReadDeadline(t time.Time) error  { return c.nc.SetReadDeadline(t) }
func (c *conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return b
}

// framingElement returns the message's element if it is a self-closed
// <open/> or <close/> of RFC 7395's namespace.
func framingElement(head []byte) *stream.Element {
	b := trimSpace(head)
	if !(hasTag(b, "open") || hasTag(b, "close")) {
		return nil
	}
	e := tagEnd(b)
	if e < 1 || b[e-1] != '/' {
		return nil
	}
	el, err := stream.ParseElement(b[:e+1])
	if err != nil || el.Space != NSFraming || (el.Local != "open" && el.Local != "close") {
		return nil
	}
	return el
}

func hasTag(b []byte, name string) bool {
	if len(b) < len(name)+2 || b[0] != '<' || string(b[1:1+len(name)]) != name {
		return false
	}
	return isSpace(b[1+len(name)]) || b[1+len(name)] == '/'
}
