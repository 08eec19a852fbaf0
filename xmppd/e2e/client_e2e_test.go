//go:build e2e

package e2e

// A deliberately small raw XMPP client: the limit and restricted-XML tests
// need to put exact bytes on the wire at exact moments, and the durability
// test needs to count acknowledgements, which no packaged client exposes.
// The behaviour of real clients is covered by slixmpp, go-sendxmpp and
// profanity in the other files.

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hearthchat/hearth/xmppd/client"
)

const (
	nsStreams = "http://etherx.jabber.org/streams"
	nsStreamE = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStanzaE = "urn:ietf:params:xml:ns:xmpp-stanzas"
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL    = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind    = "urn:ietf:params:xml:ns:xmpp-bind"
	nsSM      = "urn:xmpp:sm:3"
	nsClient  = "jabber:client"
)

// elem is a parsed element with its subtree.
type elem struct {
	Name xml.Name
	Attr []xml.Attr
	Kids []*elem
	Text string
}

func (e *elem) attr(local string) string {
	for _, a := range e.Attr {
		if a.Name.Local == local && (a.Name.Space == "" || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

func (e *elem) child(space, local string) *elem {
	for _, k := range e.Kids {
		if k.Name.Local == local && (space == "" || k.Name.Space == space) {
			return k
		}
	}
	return nil
}

func (e *elem) is(space, local string) bool {
	return e != nil && e.Name.Local == local && (space == "" || e.Name.Space == space)
}

// String renders the element for failure messages (namespaces shown as
// xmlns attributes where they change).
func (e *elem) String() string {
	if e == nil {
		return "<nil>"
	}
	var b strings.Builder
	e.render(&b, "")
	s := b.String()
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

func (e *elem) render(b *strings.Builder, parentNS string) {
	b.WriteString("<" + e.Name.Local)
	if e.Name.Space != parentNS {
		fmt.Fprintf(b, " xmlns='%s'", e.Name.Space)
	}
	for _, a := range e.Attr {
		if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
			continue
		}
		fmt.Fprintf(b, " %s='%s'", a.Name.Local, a.Value)
	}
	if len(e.Kids) == 0 && e.Text == "" {
		b.WriteString("/>")
		return
	}
	b.WriteString(">")
	xml.EscapeText(stringWriter{b}, []byte(e.Text))
	for _, k := range e.Kids {
		k.render(b, e.Name.Space)
	}
	b.WriteString("</" + e.Name.Local + ">")
}

type stringWriter struct{ b *strings.Builder }

func (w stringWriter) Write(p []byte) (int, error) { return w.b.Write(p) }

// streamErrorCondition returns the condition of a <stream:error/>, or "".
func streamErrorCondition(e *elem) string {
	if !e.is(nsStreams, "error") {
		return ""
	}
	for _, k := range e.Kids {
		if k.Name.Space == nsStreamE && k.Name.Local != "text" {
			return k.Name.Local
		}
	}
	return "(no condition element)"
}

// Pseudo-elements the reader reports besides top-level elements.
var (
	evHeader = xml.Name{Space: nsStreams, Local: "stream"}
	evClose  = xml.Name{Space: nsStreams, Local: "/stream"}
)

// recorder keeps every byte received, for failure messages.
type recorder struct {
	r  io.Reader
	mu sync.Mutex
	b  bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.mu.Lock()
	r.b.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return tail(r.b.Bytes(), 1500)
}

// xconn is one client connection. A reader goroutine turns the input into
// top-level elements on a channel, so waiting with a timeout never breaks
// the XML decoder.
type xconn struct {
	nc     net.Conn
	domain string
	rec    *recorder
	events chan *elem
	rerr   error // why the reader stopped; valid once events is closed
	wmu    sync.Mutex

	Features *elem
	JID      string // full JID after bind
}

// dialTLS opens a direct-TLS (XEP-0368) connection. src, if set, is the
// local loopback address to connect from, so per-IP limits can be separated.
func dialTLS(addr, domain, src string) (*xconn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	nc, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: domain, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, fmt.Errorf("dial tls %s: %w", addr, err)
	}
	c := &xconn{nc: nc, domain: domain}
	c.startReader(false)
	return c, nil
}

// dialPlain opens an unencrypted connection to the STARTTLS port, for the
// cases that must be rejected before TLS.
func dialPlain(addr, domain, src string, stopAtProceed bool) (*xconn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := &xconn{nc: nc, domain: domain}
	c.startReader(stopAtProceed)
	return c, nil
}

// dialStartTLS connects to the STARTTLS port and upgrades.
func dialStartTLS(addr, domain, src string) (*xconn, error) {
	return dialStartTLSWith(addr, domain, src, `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
}

// dialStartTLSWith sends request (the <starttls/> element, perhaps with
// whitespace around it, as some clients write it) to upgrade.
func dialStartTLSWith(addr, domain, src, request string) (*xconn, error) {
	c, err := dialPlain(addr, domain, src, true)
	if err != nil {
		return nil, err
	}
	nc := c.nc
	if err := c.open(); err != nil {
		nc.Close()
		return nil, err
	}
	if c.Features.child(nsTLS, "starttls") == nil {
		nc.Close()
		return nil, fmt.Errorf("no <starttls/> in features %v", c.Features)
	}
	c.send(request)
	e, err := c.next(5 * time.Second)
	if err != nil || !e.is(nsTLS, "proceed") {
		nc.Close()
		return nil, fmt.Errorf("starttls: want <proceed/>, got %v (%v)", e, err)
	}
	// The reader stopped after <proceed/>; nothing else may be read in the clear.
	for range c.events {
	}
	tc := tls.Client(nc, &tls.Config{ServerName: domain, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("starttls handshake: %w", err)
	}
	tc.SetDeadline(time.Time{})
	c.nc = tc
	c.startReader(false)
	return c, nil
}

func (c *xconn) startReader(stopAtProceed bool) {
	c.rec = &recorder{r: c.nc}
	c.events = make(chan *elem, 4096)
	go func() {
		defer close(c.events)
		dec := xml.NewDecoder(c.rec)
		var stack []*elem
		for {
			tok, err := dec.Token()
			if err != nil {
				c.rerr = err
				return
			}
			switch t := tok.(type) {
			case xml.StartElement:
				e := &elem{Name: t.Name, Attr: append([]xml.Attr(nil), t.Attr...)}
				if t.Name == evHeader {
					// A (re)opened stream: whatever was open is replaced.
					stack = stack[:0]
					c.events <- e
					continue
				}
				if len(stack) > 0 {
					p := stack[len(stack)-1]
					p.Kids = append(p.Kids, e)
				}
				stack = append(stack, e)
			case xml.EndElement:
				if len(stack) == 0 {
					c.events <- &elem{Name: evClose}
					continue
				}
				e := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					c.events <- e
					if stopAtProceed && e.is(nsTLS, "proceed") {
						return
					}
				}
			case xml.CharData:
				if len(stack) > 0 {
					stack[len(stack)-1].Text += string(t)
				}
			}
		}
	}()
}

func (c *xconn) send(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := io.WriteString(c.nc, s)
	return err
}

func (c *xconn) Close() { c.nc.Close() }

var errTimeout = errors.New("timeout")

// next returns the next top-level element (or header/close pseudo-element).
func (c *xconn) next(d time.Duration) (*elem, error) {
	select {
	case e, ok := <-c.events:
		if !ok {
			return nil, fmt.Errorf("connection ended: %v", c.rerr)
		}
		return e, nil
	case <-time.After(d):
		return nil, errTimeout
	}
}

// expect reads until an element satisfying ok arrives, failing on stream
// errors, closes and timeouts. Others are passed to skip (may be nil).
func (c *xconn) expect(what string, d time.Duration, ok func(*elem) bool) (*elem, error) {
	deadline := time.Now().Add(d)
	for {
		e, err := c.next(time.Until(deadline))
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %v; received so far: %s", what, err, c.rec)
		}
		if ok(e) {
			return e, nil
		}
		if cond := streamErrorCondition(e); cond != "" {
			return nil, fmt.Errorf("waiting for %s: stream error %s: %v", what, cond, e)
		}
		if e.Name == evClose {
			return nil, fmt.Errorf("waiting for %s: server closed the stream", what)
		}
		// Answer SM requests and pings so long waits don't look dead.
		if e.is(nsSM, "r") {
			c.send(`<a xmlns='urn:xmpp:sm:3' h='0'/>`)
		}
	}
}

func (c *xconn) header(to string) string {
	return fmt.Sprintf(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>`, to)
}

// open sends a stream header and reads the server's header and features.
func (c *xconn) open() error {
	if err := c.send(c.header(c.domain)); err != nil {
		return err
	}
	if _, err := c.expect("stream header", 5*time.Second, func(e *elem) bool { return e.Name == evHeader }); err != nil {
		return err
	}
	f, err := c.expect("stream features", 5*time.Second, func(e *elem) bool { return e.is(nsStreams, "features") })
	if err != nil {
		return err
	}
	c.Features = f
	return nil
}

func (c *xconn) mechanisms() []string {
	var out []string
	if m := c.Features.child(nsSASL, "mechanisms"); m != nil {
		for _, k := range m.Kids {
			out = append(out, strings.TrimSpace(k.Text))
		}
	}
	return out
}

// saslError is a SASL <failure/>.
type saslError struct{ Condition string }

func (e *saslError) Error() string { return "SASL failure: " + e.Condition }

// auth runs SCRAM (mech "SCRAM-SHA-256" or "SCRAM-SHA-1") and restarts the
// stream. The connection must have been opened already. The bytes are
// ours; the SCRAM maths are xmppd/client's, the one login client.
func (c *xconn) auth(user, password, mech string) error {
	if mech != client.ScramSHA256 && mech != client.ScramSHA1 {
		return fmt.Errorf("mechanism %s not implemented here", mech)
	}
	sc, err := client.NewScram(mech, user, password)
	if err != nil {
		return err
	}
	c.send(fmt.Sprintf(`<auth xmlns='%s' mechanism='%s'>%s</auth>`, nsSASL, mech, base64.StdEncoding.EncodeToString(sc.First())))
	e, err := c.expect("SASL challenge", 10*time.Second, func(e *elem) bool { return e.Name.Space == nsSASL })
	if err != nil {
		return err
	}
	if e.Name.Local == "failure" {
		return &saslError{failureCondition(e)}
	}
	if e.Name.Local != "challenge" {
		return fmt.Errorf("SASL: want <challenge/>, got %v", e)
	}
	first, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Text))
	if err != nil {
		return fmt.Errorf("SASL challenge not base64: %v", e)
	}
	final, err := sc.Final(first)
	if err != nil {
		return fmt.Errorf("SASL: server-first-message %q: %w", first, err)
	}
	c.send(fmt.Sprintf(`<response xmlns='%s'>%s</response>`, nsSASL, base64.StdEncoding.EncodeToString(final)))
	e, err = c.expect("SASL outcome", 15*time.Second, func(e *elem) bool { return e.Name.Space == nsSASL })
	if err != nil {
		return err
	}
	if e.Name.Local == "failure" {
		return &saslError{failureCondition(e)}
	}
	if e.Name.Local != "success" {
		return fmt.Errorf("SASL: want <success/>, got %v", e)
	}
	v, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Text))
	if err := sc.Verify(v); err != nil {
		return fmt.Errorf("SASL: %w (server does not know the password?)", err)
	}
	return c.open()
}

func failureCondition(e *elem) string {
	for _, k := range e.Kids {
		if k.Name.Local != "text" {
			return k.Name.Local
		}
	}
	return "(none)"
}

// bind binds a resource ("" lets the server choose).
func (c *xconn) bind(resource string) error {
	req := "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
	if resource != "" {
		req = "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind>"
	}
	c.send("<iq type='set' id='bind1'>" + req + "</iq>")
	e, err := c.expect("bind result", 10*time.Second, func(e *elem) bool { return e.is(nsClient, "iq") && e.attr("id") == "bind1" })
	if err != nil {
		return err
	}
	b := e.child(nsBind, "bind")
	if e.attr("type") != "result" || b == nil || b.child(nsBind, "jid") == nil {
		return fmt.Errorf("bind: got %v", e)
	}
	c.JID = strings.TrimSpace(b.child(nsBind, "jid").Text)
	return nil
}

// login dials direct TLS, authenticates with SCRAM-SHA-256 and binds.
func login(addr, domain, src, user, password, resource string) (*xconn, error) {
	c, err := dialTLS(addr, domain, src)
	if err != nil {
		return nil, err
	}
	if err := c.open(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.auth(user, password, "SCRAM-SHA-256"); err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s: %w", user, err)
	}
	if err := c.bind(resource); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// ping sends an XEP-0199 ping to the server and waits for the result.
func (c *xconn) ping(id string, d time.Duration) error {
	c.send(fmt.Sprintf("<iq type='get' id='%s' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", id, c.domain))
	e, err := c.expect("ping result "+id, d, func(e *elem) bool { return e.is(nsClient, "iq") && e.attr("id") == id })
	if err != nil {
		return err
	}
	if e.attr("type") != "result" {
		return fmt.Errorf("ping %s: got %v", id, e)
	}
	return nil
}

// xmlEscape escapes text for element content and attribute values.
func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(stringWriter{&b}, []byte(s))
	return b.String()
}
