package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Serve accepts inbound server-to-server connections (STARTTLS) on ln
// until it is closed.
func (s *S2S) Serve(ln net.Listener) error { return s.serve(ln, false, "") }

// ServeTLS accepts XEP-0368 direct TLS connections (TLS from the first
// byte; the _xmpps-server record's port) on ln until it is closed.
func (s *S2S) ServeTLS(ln net.Listener) error { return s.serve(ln, true, "") }

// bucket, when set, is what every connection is counted under instead of
// its address (OnionBucket, onion.go).
func (s *S2S) serve(ln net.Listener, direct bool, bucket string) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			return errClosed
		}
		ip := bucket
		if ip == "" {
			ip, _, _ = net.SplitHostPort(c.RemoteAddr().String())
		}
		if !s.admit(ip) {
			s.untrack(c)
			c.Close()
			s.cfg.Log.Info("s2s: too many unauthenticated connections", "ip", ip)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			defer c.Close()
			x := &inConn{s: s, c: c, ip: ip, authed: map[string]bool{}, done: make(chan struct{})}
			defer x.authenticated() // gives the slot back if never done
			defer x.ended()
			if direct && !x.handshake() {
				return
			}
			x.serve()
		}()
	}
}

// admit counts an unauthenticated inbound connection from ip; false if
// ip has too many.
func (s *S2S) admit(ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.unauthCap(ip); n > 0 && s.unauth[ip] >= n {
		return false
	}
	s.unauth[ip]++
	return true
}

// authenticated gives the connection's unauthenticated slot back (once).
func (x *inConn) authenticated() {
	if x.released {
		return
	}
	x.released = true
	s := x.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unauth[x.ip]--; s.unauth[x.ip] <= 0 {
		delete(s.unauth, x.ip)
	}
}

// inConn is one inbound stream.
type inConn struct {
	s        *S2S
	ip       string
	released bool // its unauthenticated slot was given back
	c        net.Conn
	p        *stream.Parser
	tc       *tls.Conn // after STARTTLS
	id       string
	from     string          // the header's 'from' (lower case), may be ""
	authed   map[string]bool // domains authenticated on this stream
	doms     []string        // the same, under s.mu, for PolicyChanged (policy.go)
	sasl     bool            // authenticated by SASL (no dialback after it)
	sent     bool            // our header is out for the current stream
	to       string          // our domain the current stream is to
	// XEP-0288 (bidi.go): bidi is set once the peer asked for it; out is
	// the link our queues write to the peer on, pairs the domain pairs
	// (ours, the peer's) authenticated so far.
	bidi     bool
	out      *link
	pairs    [][2]string
	saslFrom string        // the domain SASL EXTERNAL authenticated
	wmu      sync.Mutex    // writes: ours and the queue's, on a bidirectional stream
	done     chan struct{} // closed when the stream has ended
	// partialSince is when the stanza being read began to arrive.
	partialSince time.Time
}

// inReader sets the connection's read deadline before each read: until
// authentication the one set at accept (AuthTimeout); then IdleTimeout
// between stanzas, and StanzaTimeout from a stanza's first byte.
type inReader struct{ x *inConn }

func (r inReader) Read(b []byte) (int, error) {
	x := r.x
	if len(x.authed) > 0 && x.p != nil {
		now := time.Now()
		if x.p.Partial() {
			if x.partialSince.IsZero() {
				x.partialSince = now
			}
			x.c.SetReadDeadline(x.partialSince.Add(x.s.cfg.StanzaTimeout))
		} else {
			x.partialSince = time.Time{}
			x.c.SetReadDeadline(now.Add(x.s.cfg.IdleTimeout))
		}
	}
	return x.c.Read(b)
}

func (x *inConn) write(b []byte) error {
	x.wmu.Lock()
	defer x.wmu.Unlock()
	x.c.SetWriteDeadline(time.Now().Add(x.s.cfg.WriteTimeout))
	_, err := x.c.Write(b)
	return err
}

// send writes an element onto the stream (with the write deadline).
func (x *inConn) send(el *stream.Element) error { return x.write(el.Append(nil, NSServer)) }

// fail ends the stream with a stream error (RFC 6120 §4.9).
func (x *inConn) fail(cond, text string) {
	if !x.sent {
		x.write([]byte(header(x.s.domain, "", newID())))
	}
	x.write(session.StreamError(cond, text))
	x.s.cfg.Log.Info("s2s: inbound stream error", "peer", x.from, "ip", x.c.RemoteAddr().String(), "cond", cond, "text", text)
}

func (x *inConn) serve() {
	x.c.SetReadDeadline(time.Now().Add(x.s.cfg.AuthTimeout))
	x.p = stream.NewParser(inReader{x}, stream.PreAuthLimits)
	for {
		ev, err := x.p.Next()
		if err != nil {
			var ne net.Error
			if x.out != nil && errors.As(err, &ne) && ne.Timeout() && !x.p.Partial() &&
				time.Since(time.Unix(0, x.out.lastWrite.Load())) < x.s.bidiIdle() {
				continue // idle this way, but we still send on it (bidi.go)
			}
			var se *stream.Error
			if errors.As(err, &se) {
				x.fail(se.Condition, se.Text)
			}
			return
		}
		switch ev.Kind {
		case stream.Open:
			if !x.open() {
				return
			}
		case stream.Close:
			x.write([]byte("</stream:stream>"))
			return
		case stream.Stanza:
			if !x.element(ev.El) {
				return
			}
		}
		x.partialSince = time.Time{} // the next stanza's clock starts at its first byte
	}
}

// open answers a stream header with ours and the features of this step.
func (x *inConn) open() bool {
	h := x.p.Header()
	if h.Space != stream.NSStream || h.Local != "stream" || x.p.DefaultNS() != NSServer {
		x.fail("invalid-namespace", "")
		return false
	}
	to := strings.ToLower(h.Get("to"))
	if to != "" && !x.serves(to) {
		x.fail("host-unknown", "this server serves "+x.s.domain)
		return false
	}
	if to == "" {
		to = x.s.domain
	}
	if f := h.Get("from"); f != "" {
		x.from = strings.ToLower(f)
	}
	if x.from != "" && !x.s.allowed(x.from) {
		// Before TLS: nothing it could authenticate would be accepted
		// (federation off, or the domain blocked), and a peer of ours
		// bounces at once on this error (dial.go refusals).
		x.fail("policy-violation", refusedText(x.from))
		return false
	}
	x.id = newID()
	x.to = to
	b := []byte(header(to, x.from, x.id))
	x.sent = true
	b = append(b, "<stream:features>"...)
	switch {
	case x.tc == nil:
		b = stream.New(nsTLS, "starttls").Add(stream.New(nsTLS, "required")).Append(b, NSServer)
	case !x.sasl:
		if x.from != "" && x.certValid(x.from) {
			mechs := stream.New(nsSASL, "mechanisms").Add(stream.New(nsSASL, "mechanism").AddText("EXTERNAL"))
			b = mechs.Append(b, NSServer)
		}
		b = stream.New(nsDBFeat, "dialback").Add(stream.New(nsDBFeat, "errors")).Append(b, NSServer)
		// XEP-0288: offered after TLS only (STARTTLS must come first).
		b = stream.New(nsBidiFeat, "bidi").Append(b, NSServer)
	}
	if x.tc != nil {
		// XEP-0478: what we accept, so a peer bounces a larger stanza
		// to its sender instead of losing the stream over it.
		lim := stream.New(nsLimits, "limits").Add(
			stream.New(nsLimits, "max-bytes").AddText(strconv.Itoa(x.s.cfg.MaxStanzaBytes)),
			stream.New(nsLimits, "idle-seconds").AddText(strconv.Itoa(int(x.s.cfg.IdleTimeout/time.Second))))
		b = lim.Append(b, NSServer)
	}
	b = append(b, "</stream:features>"...)
	if x.write(b) != nil {
		return false
	}
	if x.sasl && x.saslFrom != "" {
		// XEP-0288 §2.2: after SASL we may send from the stream's 'to'
		// to the authenticated domain — once this header is out.
		x.pair(to, x.saslFrom)
		x.saslFrom = ""
	}
	return true
}

// pair records a domain pair (ours, the peer's) the stream authenticated;
// on a bidirectional stream our queue for it may now write here.
func (x *inConn) pair(local, remote string) {
	x.pairs = append(x.pairs, [2]string{local, remote})
	if x.bidi {
		x.s.bidi.add(local, remote, x.link())
		x.s.cfg.Log.Info("s2s: bidirectional stream", "domain", remote, "from", local)
	}
}

// link is the stream as a link for our queue (bidi.go).
func (x *inConn) link() *link {
	if x.out == nil {
		x.out = &link{c: x.c, s: x.s, done: x.done, bidi: true, wmu: &x.wmu}
		x.out.lastWrite.Store(time.Now().UnixNano())
	}
	return x.out
}

// ended unregisters the stream's pairs when it ends.
func (x *inConn) ended() {
	if x.out != nil {
		x.s.bidi.drop(x.out)
	}
	x.s.mu.Lock()
	delete(x.s.ins, x)
	x.s.mu.Unlock()
	close(x.done)
}

// serves reports whether domain is ours (the domain or a hosted service).
func (x *inConn) serves(domain string) bool { return x.s.serves(domain) }

func (s *S2S) serves(domain string) bool {
	return domain == s.domain || s.cfg.Server.Service(domain) != nil
}

func (x *inConn) certValid(domain string) bool {
	if x.tc == nil {
		return false
	}
	return x.s.certValid(x.tc.ConnectionState().PeerCertificates, domain)
}

// element handles one top-level element; false ends the stream.
func (x *inConn) element(el *stream.Element) bool {
	switch {
	case x.tc == nil:
		if el.Space == nsTLS && el.Local == "starttls" {
			return x.starttls()
		}
		if isStanza(el) {
			x.fail("not-authorized", "authenticate first")
		} else {
			x.fail("policy-violation", "STARTTLS is required")
		}
		return false
	case el.Space == nsSASL && el.Local == "auth":
		return x.external(el)
	case el.Space == NSDialback && el.Local == "result":
		return x.dbResult(el)
	case el.Space == NSDialback && el.Local == "verify":
		return x.dbVerify(el)
	case el.Space == nsBidi && el.Local == "bidi":
		if !x.bidi {
			x.bidi = true
			for _, p := range x.pairs { // asked late: what is authenticated already
				x.s.bidi.add(p[0], p[1], x.link())
			}
		}
		return true
	case isStanza(el):
		return x.stanza(el)
	}
	x.fail("unsupported-stanza-type", "")
	return false
}

// handshake runs the server side of TLS on the connection (direct TLS,
// or after <proceed/>).
func (x *inConn) handshake() bool {
	if x.s.inTLS == nil {
		return false
	}
	x.c.SetDeadline(time.Now().Add(x.s.cfg.AuthTimeout))
	tc := tls.Server(x.c, x.s.inTLS)
	if err := tc.Handshake(); err != nil {
		x.s.cfg.Log.Debug("s2s: inbound TLS", "ip", x.c.RemoteAddr().String(), "err", err)
		return false
	}
	x.tc, x.c, x.sent = tc, tc, false
	x.c.SetWriteDeadline(time.Time{}) // each write sets its own
	return true
}

func (x *inConn) starttls() bool {
	if x.s.inTLS == nil {
		x.write([]byte("<failure xmlns='" + nsTLS + "'/>"))
		return false
	}
	x.write([]byte("<proceed xmlns='" + nsTLS + "'/>"))
	x.p.SkipSpace()
	if x.p.Buffered() > 0 {
		// Plaintext sent after <starttls/> would be read as if it had
		// come over TLS (CVE-2011-0411 class).
		return false
	}
	if !x.handshake() {
		return false
	}
	x.p = stream.NewParser(inReader{x}, stream.PreAuthLimits)
	return true
}

// external is SASL EXTERNAL (RFC 6120 §6.4, XEP-0178): the peer's
// certificate must be valid for the domain it claims.
func (x *inConn) external(el *stream.Element) bool {
	failure := func(cond string) bool {
		return x.write([]byte("<failure xmlns='"+nsSASL+"'><"+cond+"/></failure>")) == nil
	}
	if el.Get("mechanism") != "EXTERNAL" || x.sasl {
		return failure("invalid-mechanism")
	}
	domain := x.from
	if t := strings.TrimSpace(el.Text()); t != "" && t != "=" {
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return failure("incorrect-encoding")
		}
		domain = strings.ToLower(string(b))
	}
	if domain == "" || !x.s.allowed(domain) || !x.certValid(domain) {
		return failure("not-authorized")
	}
	if x.write([]byte("<success xmlns='"+nsSASL+"'/>")) != nil {
		return false
	}
	x.sasl = true
	x.authedAs(domain)
	x.saslFrom = domain
	x.authenticated()
	x.s.cfg.Log.Info("s2s: peer authenticated", "domain", domain, "auth", "EXTERNAL")
	x.sent = false
	x.p.Restart()
	x.p.SetLimits(x.s.postAuth())
	return true
}

// dbResult is a peer's dialback key for a domain it wants to send from:
// valid if its certificate is valid for that domain (no need to ask),
// else if the domain's authoritative server confirms the key.
func (x *inConn) dbResult(el *stream.Element) bool {
	from, to := strings.ToLower(el.Get("from")), strings.ToLower(el.Get("to"))
	reply := func(typ string, errEl *stream.Element) bool {
		r := dbElement("result", "from", to, "to", from, "type", typ)
		if errEl != nil {
			r.Add(errEl)
		}
		return x.send(r) == nil
	}
	if !x.serves(to) {
		x.fail("host-unknown", "")
		return false
	}
	if _, err := jid.Parse(from); err != nil || from == "" || strings.ContainsAny(from, "@/") {
		x.fail("improper-addressing", "")
		return false
	}
	if !x.s.allowed(from) {
		return reply("error", stream.New(stream.NSStanzaE, "error", "type", "cancel").Add(stream.New(stream.NSStanzaE, "forbidden")))
	}
	ok := x.certValid(from)
	if !ok {
		ctx, cancel := context.WithTimeout(x.s.ctx, x.s.cfg.DialTimeout+x.s.cfg.NegotiateTimeout)
		valid, err := x.s.verify(ctx, to, from, x.id, strings.TrimSpace(el.Text()))
		cancel()
		if err != nil {
			x.s.cfg.Log.Info("s2s: dialback verification failed", "domain", from, "err", err)
			e := stream.New(NSServer, "error", "type", "cancel").Add(stream.New(stream.NSStanzaE, "remote-server-not-found"))
			return reply("error", e)
		}
		ok = valid
	}
	if !ok {
		// XEP-0220 §2.4: a forged key ends the stream.
		reply("invalid", nil)
		x.s.cfg.Log.Warn("s2s: forged dialback key", "domain", from, "ip", x.c.RemoteAddr().String())
		x.write([]byte("</stream:stream>"))
		return false
	}
	x.authedAs(from)
	x.authenticated()
	x.p.SetLimits(x.s.postAuth())
	x.s.cfg.Log.Info("s2s: peer authenticated", "domain", from, "auth", "dialback")
	if !reply("valid", nil) {
		return false
	}
	x.pair(to, from) // XEP-0288 §2.2: the pair reversed, after the answer
	return true
}

// dbVerify answers whether a key is one we gave out (XEP-0220 §2.3.2).
func (x *inConn) dbVerify(el *stream.Element) bool {
	receiving, originating := strings.ToLower(el.Get("from")), strings.ToLower(el.Get("to"))
	if !x.serves(originating) {
		x.fail("host-unknown", "")
		return false
	}
	typ := "invalid"
	if checkKey(x.s.cfg.Secret, receiving, originating, el.Get("id"), strings.TrimSpace(el.Text())) {
		typ = "valid"
	}
	return x.send(dbElement("verify", "from", originating, "to", receiving, "id", el.Get("id"), "type", typ)) == nil
}

// stanza routes one stanza from an authenticated peer into the server.
func (x *inConn) stanza(el *stream.Element) bool {
	if len(x.authed) == 0 {
		x.fail("not-authorized", "authenticate first")
		return false
	}
	if cond, text := x.s.accept(el, func(d string) bool { return x.authed[d] }); cond != "" {
		x.fail(cond, text)
		return false
	}
	return true
}
