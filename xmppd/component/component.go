// Package component is an XEP-0114 external component listener: a program
// on the box connects over loopback, proves it knows a shared secret, and
// is then a second domain (push.<domain>, say) that the server routes
// stanzas to and accepts stanzas from.
//
// Why it exists: XEP-0357 push notifications go to an app server, which in
// the field is another XMPP domain (Conversations' p2.siacs.eu). Until
// federation exists the server reaches no other domain, so the push tests
// need a second domain on this machine; a component is the smallest honest
// one — a real client library (slixmpp's ComponentXMPP) on its own domain,
// reached by the same "not our domain" routing that s2s will take over.
//
// Limits of this first cut, on purpose:
//   - loopback only (Listen refuses any other address): the handshake is
//     a SHA-1 of the stream id and the secret over plain TCP, fine on the
//     box's own loopback and nowhere else;
//   - one domain per listener and one connection for it at a time (a
//     second is refused with a conflict stream error);
//   - off by default: nothing in the daemon starts a listener yet; a
//     program (or test) calls Listen with a secret from SecretFile. The
//     federation issue decides how an operator turns one on.
//
// Stanzas from the component must be from its domain (else the stream
// ends with invalid-from); they are routed like stanzas the server
// receives from another server (server.Route). Stanzas for the domain go
// out through a session write queue (bounded, never blocking the sender);
// while no component is connected they bounce with
// remote-server-not-found, as for an unreachable server.
package component

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// NS is the content namespace of a component stream.
const NS = "jabber:component:accept"

// HandshakeTimeout bounds the time from connect to an accepted handshake.
const HandshakeTimeout = 10 * time.Second

// Listener accepts the external component for one domain.
type Listener struct {
	srv    *server.Server
	host   string
	secret string
	ln     net.Listener

	mu     sync.Mutex
	cur    *session.Session // the connected component, nil if none
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// Listen starts a listener on addr (a loopback address; port 0 picks one)
// for the component domain host, authenticated with secret.
func Listen(srv *server.Server, addr, host, secret string) (*Listener, error) {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("component: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("component: %q is not a loopback address: components are for programs on the box", addr)
	}
	j, err := jid.Parse(host)
	if err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
		return nil, fmt.Errorf("component: bad domain %q", host)
	}
	host = strings.ToLower(j.Domainpart())
	if host == strings.ToLower(srv.Domain) || srv.Service(host) != nil {
		return nil, fmt.Errorf("component: %s is served by the server itself", host)
	}
	if len(secret) < 16 {
		return nil, errors.New("component: secret shorter than 16 characters")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("component: listen %s: %w", addr, err)
	}
	l := &Listener{srv: srv, host: host, secret: secret, ln: ln, conns: map[net.Conn]bool{}}
	// Below the invites module's rule for limited members (1000), which
	// must refuse their stanzas to any other domain first.
	srv.Hook(server.StanzaRemote, 500, l.route)
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Host is the component's domain.
func (l *Listener) Host() string { return l.host }

// Close stops the listener and disconnects the component.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	err := l.ln.Close()
	l.wg.Wait()
	return err
}

func (l *Listener) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[c] = true
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			l.serve(c)
			c.Close()
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
		}()
	}
}

// route sends a stanza for the component's domain to it (server hook).
func (l *Listener) route(st *server.Stanza) bool {
	if !strings.EqualFold(st.To.Domainpart(), l.host) {
		return false
	}
	l.mu.Lock()
	s := l.cur
	l.mu.Unlock()
	if s == nil || !s.Send(rename(st.El, stream.NSClient, NS)) {
		return false // the core bounces: remote-server-not-found
	}
	return true
}

func streamHeader(host, id string) string {
	return "<?xml version='1.0'?><stream:stream xmlns='" + NS + "' xmlns:stream='" + stream.NSStream +
		"' from='" + host + "' id='" + id + "'>"
}

// fail ends a connection in negotiation with a stream error.
func fail(c net.Conn, host, cond string) {
	c.Write([]byte(streamHeader(host, "x") + string(session.StreamError(cond, ""))))
}

func (l *Listener) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(HandshakeTimeout))
	p := stream.NewParser(c, stream.PreAuthLimits)
	ev, err := p.Next()
	if err != nil || ev.Kind != stream.Open {
		return
	}
	if p.DefaultNS() != NS {
		fail(c, l.host, "invalid-namespace")
		return
	}
	if !strings.EqualFold(p.Header().Get("to"), l.host) {
		fail(c, l.host, "host-unknown")
		return
	}
	idb := make([]byte, 16)
	rand.Read(idb)
	id := hex.EncodeToString(idb)
	if _, err := c.Write([]byte(streamHeader(l.host, id))); err != nil {
		return
	}
	ev, err = p.Next()
	if err != nil || ev.Kind != stream.Stanza || ev.El.Space != NS || ev.El.Local != "handshake" {
		c.Write(session.StreamError("not-authorized", ""))
		return
	}
	sum := sha1.Sum([]byte(id + l.secret))
	want := hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(strings.TrimSpace(ev.El.Text()))), []byte(want)) != 1 {
		c.Write(session.StreamError("not-authorized", ""))
		l.srv.Log.Warn("component: handshake refused", "host", l.host, "remote", c.RemoteAddr().String())
		return
	}
	sess := session.New(c, jid.MustParse(l.host), NS)
	sess.SetReroute(func(els []*stream.Element) {
		// What the component accepted but could not be written: its
		// senders learn it did not arrive (server-generated requests,
		// like push publishes, see their answer never come).
		go func() {
			for _, el := range els {
				if el.Local == "message" || el.Local == "iq" && (el.Get("type") == "get" || el.Get("type") == "set") {
					l.srv.Route(server.ErrorReply(rename(el, NS, stream.NSClient), server.ErrRemoteNotFound))
				}
			}
		}()
	})
	l.mu.Lock()
	if l.cur != nil || l.closed {
		l.mu.Unlock()
		c.Write(session.StreamError("conflict", "another connection serves this domain"))
		return
	}
	l.cur = sess
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.cur == sess {
			l.cur = nil
		}
		l.mu.Unlock()
		// Let a stream error or closing tag already queued reach the
		// component before the connection closes (bounded: a peer that
		// does not read is cut off).
		sess.CloseWithError("", "")
		select {
		case <-sess.Done():
		case <-time.After(HandshakeTimeout):
		}
		sess.TryEnd()
		sess.Kill()
	}()
	c.SetDeadline(time.Time{})
	if !sess.SendRaw([]byte("<handshake/>")) {
		return
	}
	l.srv.Log.Info("component: connected", "host", l.host)
	p.SetLimits(stream.PostAuthLimits)
	for {
		ev, err := p.Next()
		if err != nil {
			var se *stream.Error
			if errors.As(err, &se) {
				sess.CloseWithError(se.Condition, se.Text)
			}
			return
		}
		switch ev.Kind {
		case stream.Close:
			sess.CloseWithError("", "")
			return
		case stream.Stanza:
			if !l.stanza(sess, ev.El) {
				return
			}
		}
	}
}

// stanza routes one stanza from the component; false ends the stream.
func (l *Listener) stanza(sess *session.Session, el *stream.Element) bool {
	if el.Space != NS || (el.Local != "message" && el.Local != "presence" && el.Local != "iq") {
		sess.CloseWithError("unsupported-stanza-type", "")
		return false
	}
	el = rename(el, NS, stream.NSClient)
	from, err := jid.Parse(el.Get("from"))
	if err != nil || !strings.EqualFold(from.Domainpart(), l.host) {
		sess.CloseWithError("invalid-from", "stanzas must be from "+l.host)
		return false
	}
	if _, err := jid.Parse(el.Get("to")); err != nil || el.Get("to") == "" {
		if el.Get("type") != "error" && el.Get("type") != "result" {
			sess.Send(rename(server.ErrorReply(el, server.ErrJIDMalformed), stream.NSClient, NS))
		}
		return true
	}
	l.srv.Route(el)
	return true
}

// rename copies el with every element in namespace from moved to to (the
// stanza and its jabber:client children such as <body/>: a component
// stream's content namespace is jabber:component:accept).
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

// SecretFile returns the secret kept in path, making one (128 bits from
// crypto/rand, hex) the first time. The file is the operator's to hand to
// the component program; it is written owner-only.
func SecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("component: secret %s: %w", path, err)
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("component: secret: %w", err)
	}
	s := hex.EncodeToString(raw)
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("component: secret %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("component: secret %s: %w", path, err)
	}
	return s, nil
}
