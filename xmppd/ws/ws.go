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
//     connection.
//   - A message is never buffered whole: its bytes stream into c2s's
//     parser, which refuses a stanza over the limit (pre-auth or
//     post-auth) with a stream error; the library closes a message past
//     it with 1009 as a backstop. Two elements in one message, or a
//     message ending inside its element, is a stream error.
//   - The raw bytes are shaped like a TCP stream's (c2s.Shape), frame
//     headers included: a flood of empty continuation frames costs what
//     the same rate of stanza bytes costs, and the stanza clock (or the
//     auth deadline) ends a message that never finishes.
//   - Ping/pong keepalive: a peer that does not answer a ping within
//     PongTimeout is closed (its session hibernates for resumption).
//   - SASL PLAIN is never offered or accepted without TLS under the
//     WebSocket (plain http://hearth.local on the LAN): SCRAM only, whose
//     exchange never carries the password.
//
// Idle sessions. A TCP session parks on xmppd/idle's poller and holds no
// goroutine while idle; a WebSocket session here keeps its reader
// goroutine blocked in the library's Read (coder/websocket has no
// non-blocking read, and its message reader keeps per-message state
// across calls, so it cannot be resumed from a poller), and with it the
// parser's 2 KiB read buffer (c2s releases it only when it parks) and the
// library's 4 KiB bufio reader and writer. Measured with make bench's
// WebSocket phase (hearth-bench -servers hearth,prosody -quick -skip
// sat,rates,logins,offline; 200 idle sessions, VmRSS of the server):
// 52.7 KiB per idle WebSocket session (plain HTTP, no TLS), against 38.0
// KiB per idle TCP session (TLS included, parked) and Prosody's
// mod_websocket at 37.7 KiB. Of that, the goroutine stacks are about 10
// KiB a session (pprof: 2.0 MiB of stacks with 200 sessions), and a frame
// reader of our own on xmppd/idle would save the stack, the parser's
// buffer and the bufio reader, about 16 KiB, bringing it to Prosody's
// figure. That is memory we care about on a 1 GiB Pi, but little in
// absolute terms (a club of 50 members with two browser tabs each: about
// 1.6 MiB), and not worth hand-written RFC 6455 frame parsing (masking,
// control frames between fragments, the close handshake) in this issue:
// the library stays; parking these sessions is left as a follow-up.
package ws

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/hearthchat/hearth/xmppd/c2s"
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
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if strings.TrimSpace(p) == "xmpp" {
				return true
			}
		}
	}
	return false
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
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	hw := &hijackWriter{ResponseWriter: w, h: h}
	wc, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols: []string{"xmpp"},
		// Checked above against the box's names.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		h.cfg.Log.Debug("ws: accept", "ip", ip, "err", err)
		return
	}
	// The parser refuses a stanza over the limit as it streams in (a
	// stream error); this is the library's backstop for a message of
	// white space around it.
	wc.SetReadLimit(int64(h.cfg.MaxMessage) + 4096)
	c := &conn{h: h, ws: wc, local: hw.local, remote: hw.remote}
	c.keepalive()
	h.cfg.C2S.ServeConn(c, c2s.Transport{IP: ip, TLS: r.TLS})
}

// hijackWriter hands the library the hijacked connection with the HTTP
// server's deadlines cleared (its ReadTimeout would end every WebSocket a
// minute after the request) and its reads shaped.
type hijackWriter struct {
	http.ResponseWriter
	h             *Handler
	local, remote net.Addr
}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("ws: not hijackable")
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	nc.SetDeadline(time.Time{})
	w.local, w.remote = nc.LocalAddr(), nc.RemoteAddr()
	if w.h.cfg.ReadRate > 0 {
		nc = &shapedConn{Conn: nc, r: c2s.Shape(nc, w.h.cfg.ReadRate, w.h.cfg.ReadBurst)}
	}
	return nc, brw, nil
}

type shapedConn struct {
	net.Conn
	r io.Reader
}

func (c *shapedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// conn is the WebSocket as the net.Conn c2s and the session use.
type conn struct {
	h             *Handler
	ws            *websocket.Conn
	local, remote net.Addr

	// Read side: only the c2s reader.
	msg    io.Reader
	cancel context.CancelFunc
	check  frameCheck
	out    []byte // translated bytes not yet returned

	dmu      sync.Mutex
	rdl, wdl time.Time

	wmu    sync.Mutex // the session's writer or c2s before a session
	frames outFrames

	ping      *time.Timer
	closeOnce sync.Once
	closed    chan struct{}
}

// maxHead bounds what is read of a message to tell <open/> and <close/>
// from a stanza.
const maxHead = 4096

func (c *conn) Read(p []byte) (int, error) {
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, nil
		}
		if c.msg == nil {
			if err := c.next(); err != nil {
				return 0, err
			}
			continue
		}
		n, err := c.msg.Read(p)
		if n > 0 {
			if cerr := c.check.feed(p[:n]); cerr != nil {
				return 0, cerr
			}
		}
		if err == io.EOF {
			c.endMsg()
			if cerr := c.check.end(); cerr != nil {
				return 0, cerr
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			return n, c.readErr(err)
		}
		return n, nil
	}
}

func (c *conn) endMsg() {
	c.msg = nil
	if c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
}

func (c *conn) readErr(err error) error {
	c.endMsg()
	if errors.Is(err, websocket.ErrMessageTooBig) {
		c.h.cfg.Log.Info("ws: message over the limit", "remote", c.remote)
	}
	return err
}

// next starts the next message: <open/> and <close/> become the stream's
// header and end, anything else is passed on as it arrives.
func (c *conn) next() error {
	ctx := context.Background()
	c.dmu.Lock()
	dl := c.rdl
	c.dmu.Unlock()
	if !dl.IsZero() {
		ctx, c.cancel = context.WithDeadline(ctx, dl)
	}
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		return c.readErr(err)
	}
	if typ != websocket.MessageText {
		c.endMsg()
		return &stream.Error{Condition: "unsupported-encoding", Text: "RFC 7395: text messages only"}
	}
	c.msg = r
	c.check = frameCheck{}
	// Read the first tag.
	head := make([]byte, 0, 256)
	for {
		if len(head) == cap(head) {
			if cap(head) >= maxHead {
				break
			}
			head = append(head, make([]byte, cap(head))...)[:len(head)]
		}
		n, err := r.Read(head[len(head):cap(head)])
		head = head[:len(head)+n]
		if err == io.EOF {
			c.endMsg()
			break
		}
		if err != nil {
			return c.readErr(err)
		}
		if b := trimSpace(head); len(b) > 0 && (b[0] != '<' || tagEnd(b) >= 0) {
			break
		}
	}
	if el := framingElement(head); el != nil {
		if c.msg != nil {
			// The rest must be nothing but white space.
			rest, err := io.ReadAll(io.LimitReader(c.msg, maxHead))
			c.endMsg()
			if err != nil {
				return c.readErr(err)
			}
			if len(strings.TrimSpace(string(rest))) > 0 {
				return errFrame("two elements in one WebSocket message (RFC 7395: one per message)")
			}
		}
		if el.Local == "open" {
			c.out = streamHeader(el)
		} else {
			c.out = []byte("</stream:stream>")
		}
		return nil
	}
	if err := c.check.feed(head); err != nil {
		c.endMsg()
		return err
	}
	if c.msg == nil {
		if err := c.check.end(); err != nil {
			return err
		}
	}
	c.out = head
	return nil
}

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

func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx := context.Background()
	c.dmu.Lock()
	dl := c.wdl
	c.dmu.Unlock()
	if !dl.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	err := c.frames.split(b, func(m []byte) error {
		return c.ws.Write(ctx, websocket.MessageText, m)
	})
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// keepalive pings the peer every PingInterval; one that does not answer
// within PongTimeout is closed. A timer, not a goroutine: an idle
// connection's only goroutine is its reader.
func (c *conn) keepalive() {
	c.closed = make(chan struct{})
	c.ping = time.AfterFunc(c.h.cfg.PingInterval, func() {
		select {
		case <-c.closed:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.PongTimeout)
		err := c.ws.Ping(ctx)
		cancel()
		if err != nil {
			c.h.cfg.Log.Info("ws: no pong, closing", "remote", c.remote, "err", err)
			c.ws.CloseNow()
			return
		}
		c.ping.Reset(c.h.cfg.PingInterval)
	})
}

func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		c.ping.Stop()
		err = c.ws.Close(websocket.StatusNormalClosure, "")
	})
	return err
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.dmu.Lock()
	c.rdl, c.wdl = t, t
	c.dmu.Unlock()
	return nil
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	c.rdl = t
	c.dmu.Unlock()
	return nil
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	c.wdl = t
	c.dmu.Unlock()
	return nil
}
