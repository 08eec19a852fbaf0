// Package client is a small XMPP client for load generation and health
// checks: it connects (STARTTLS or direct TLS), authenticates with
// SCRAM-SHA-256 or SCRAM-SHA-1, binds a resource, and then moves raw stanza
// bytes in both directions. It builds no trees and keeps no state beyond
// the connection, so thousands of sessions fit in one process.
//
//	c, err := client.Dial(ctx, client.Config{Addr: "127.0.0.1:5222",
//		Domain: "hearth.localhost", User: "alice", Password: pw})
//	defer c.Close()
//	c.Send([]byte("<presence/>"))
//	st, err := c.ReadStanza()
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Config says where and as whom to log in.
type Config struct {
	Addr     string // host:port to dial
	Domain   string // the XMPP domain (stream "to", TLS server name)
	User     string // local part
	Password string
	// Resource to request; empty lets the server choose.
	Resource string
	// DirectTLS starts TLS at once (XEP-0368, port 5223) instead of STARTTLS.
	DirectTLS bool
	// TLS overrides the TLS settings. nil means: verify the certificate
	// for Domain with the system roots, TLS 1.2 at least.
	TLS *tls.Config
	// Mechanism forces one SASL mechanism; empty picks the best offered
	// without channel binding. A -PLUS one binds to TLS 1.3 (tls-exporter).
	Mechanism string
	// Register creates the account with XEP-0077 in-band registration
	// before logging in (an existing account is fine). For test setups.
	Register bool
	// Timeout bounds the whole negotiation; 0 means 10 s.
	Timeout time.Duration
	// Keys caches salted passwords across logins; may be nil.
	Keys *KeyCache
}

// Conn is a negotiated, bound client stream. Send may be called from one
// goroutine while another calls ReadStanza.
type Conn struct {
	nc   net.Conn
	br   *bufio.Reader
	sc   *scanner
	jid  string
	mech string

	wmu    sync.Mutex
	closed bool
}

// Error is a stream or SASL failure reported by the server.
type Error struct {
	Stage     string // "starttls", "auth", "bind", "register", "stream"
	Condition string // e.g. "not-authorized"
	Raw       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("client: %s failed: %s", e.Stage, e.Condition)
}

// Dial connects, negotiates and binds. On error the connection is closed.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", cfg.Addr, err)
	}
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	// Closing the socket is what unblocks reads when ctx is cancelled early.
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()

	c := &Conn{nc: nc}
	if err := c.negotiate(cfg); err != nil {
		c.nc.Close()
		if ctx.Err() != nil {
			// The deadline fired mid-read; say so rather than "i/o timeout".
			return nil, fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return nil, err
	}
	c.nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *Conn) tlsConfig(cfg Config) *tls.Config {
	if cfg.TLS != nil {
		t := cfg.TLS.Clone()
		if t.ServerName == "" {
			t.ServerName = cfg.Domain
		}
		return t
	}
	return &tls.Config{ServerName: cfg.Domain, MinVersion: tls.VersionTLS12}
}

func (c *Conn) startTLS(cfg Config) error {
	tc := tls.Client(c.nc, c.tlsConfig(cfg))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("client: tls handshake: %w", err)
	}
	c.nc = tc
	c.br = bufio.NewReaderSize(tc, 4096)
	return nil
}

// restart opens a new stream and returns its features.
func (c *Conn) restart(cfg Config) (*features, error) {
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.nc, 4096)
	}
	c.sc = newScanner(c.br)
	hdr := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
		"xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='" +
		escape(cfg.Domain) + "'>"
	if _, err := io.WriteString(c.nc, hdr); err != nil {
		return nil, fmt.Errorf("client: write stream header: %w", err)
	}
	k, b, err := c.sc.next()
	if err != nil {
		return nil, fmt.Errorf("client: read stream header: %w", err)
	}
	if k != kindHeader {
		return nil, &Error{Stage: "stream", Condition: "no stream header", Raw: string(b)}
	}
	st, err := c.expect("stream")
	if err != nil {
		return nil, err
	}
	if st.name != "features" {
		return nil, &Error{Stage: "stream", Condition: "expected features, got " + st.name, Raw: string(st.raw)}
	}
	return st.feat, nil
}

func (c *Conn) negotiate(cfg Config) error {
	if cfg.DirectTLS {
		if err := c.startTLS(cfg); err != nil {
			return err
		}
	}
	f, err := c.restart(cfg)
	if err != nil {
		return err
	}
	if !cfg.DirectTLS {
		if !f.starttls {
			return &Error{Stage: "starttls", Condition: "not offered"}
		}
		if err := c.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
			return err
		}
		st, err := c.expect("starttls")
		if err != nil {
			return err
		}
		if st.name != "proceed" {
			return &Error{Stage: "starttls", Condition: st.name, Raw: string(st.raw)}
		}
		c.br = nil
		if err := c.startTLS(cfg); err != nil {
			return err
		}
		if f, err = c.restart(cfg); err != nil {
			return err
		}
	}
	if cfg.Register {
		if err := c.register(cfg); err != nil {
			return err
		}
	}
	mech := cfg.Mechanism
	if mech == "" {
		for _, m := range []string{ScramSHA256, ScramSHA1} {
			if f.mechs[m] {
				mech = m
				break
			}
		}
		if mech == "" {
			return &Error{Stage: "auth", Condition: "no SCRAM mechanism offered"}
		}
	} else if !f.mechs[mech] {
		return &Error{Stage: "auth", Condition: mech + " not offered"}
	}
	if err := c.auth(cfg, mech); err != nil {
		return err
	}
	c.mech = mech
	if _, err := c.restart(cfg); err != nil {
		return err
	}
	return c.bind(cfg)
}

func (c *Conn) auth(cfg Config, mech string) error {
	s, err := newScram(mech, cfg.User, cfg.Password, cfg.Keys)
	if err != nil {
		return err
	}
	if strings.HasSuffix(mech, "-PLUS") {
		// Channel binding (only when asked for with Config.Mechanism).
		tc, ok := c.nc.(*tls.Conn)
		if !ok {
			return &Error{Stage: "auth", Condition: mech + " without TLS"}
		}
		if s.cbData, err = Exporter(tc.ConnectionState()); err != nil {
			return fmt.Errorf("client: %s: tls-exporter: %w", mech, err)
		}
		s.cbType = "tls-exporter"
	}
	if err := c.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mech + "'>" +
		base64.StdEncoding.EncodeToString(s.first()) + "</auth>"); err != nil {
		return err
	}
	st, err := c.expect("auth")
	if err != nil {
		return err
	}
	if st.name != "challenge" {
		return &Error{Stage: "auth", Condition: st.cond(), Raw: string(st.raw)}
	}
	sf, err := base64.StdEncoding.DecodeString(st.text)
	if err != nil {
		return fmt.Errorf("client: auth: bad challenge encoding: %w", err)
	}
	cf, err := s.final(sf)
	if err != nil {
		return err
	}
	if err := c.write("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" +
		base64.StdEncoding.EncodeToString(cf) + "</response>"); err != nil {
		return err
	}
	st, err = c.expect("auth")
	if err != nil {
		return err
	}
	if st.name == "challenge" {
		// Some servers send the server-final in a challenge and wait for
		// an empty response before success.
		fin, _ := base64.StdEncoding.DecodeString(st.text)
		if err := s.verify(fin); err != nil {
			return err
		}
		if err := c.write("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"); err != nil {
			return err
		}
		st, err = c.expect("auth")
		if err != nil {
			return err
		}
		if st.name != "success" {
			return &Error{Stage: "auth", Condition: st.cond(), Raw: string(st.raw)}
		}
		return nil
	}
	if st.name != "success" {
		return &Error{Stage: "auth", Condition: st.cond(), Raw: string(st.raw)}
	}
	fin, err := base64.StdEncoding.DecodeString(st.text)
	if err != nil {
		return fmt.Errorf("client: auth: bad success encoding: %w", err)
	}
	return s.verify(fin)
}

func (c *Conn) bind(cfg Config) error {
	res := ""
	if cfg.Resource != "" {
		res = "<resource>" + escape(cfg.Resource) + "</resource>"
	}
	if err := c.write("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" +
		res + "</bind></iq>"); err != nil {
		return err
	}
	st, err := c.expect("bind")
	if err != nil {
		return err
	}
	if st.name != "iq" || st.typ != "result" || st.jid == "" {
		return &Error{Stage: "bind", Condition: st.cond(), Raw: string(st.raw)}
	}
	c.jid = st.jid
	return nil
}

func (c *Conn) register(cfg Config) error {
	if err := c.write("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>" +
		escape(cfg.User) + "</username><password>" + escape(cfg.Password) +
		"</password></query></iq>"); err != nil {
		return err
	}
	st, err := c.expect("register")
	if err != nil {
		return err
	}
	if st.name != "iq" {
		return &Error{Stage: "register", Condition: "unexpected " + st.name, Raw: string(st.raw)}
	}
	if st.typ == "result" || st.cond() == "conflict" {
		return nil
	}
	return &Error{Stage: "register", Condition: st.cond(), Raw: string(st.raw)}
}

// expect reads the next stanza during negotiation and summarises it.
func (c *Conn) expect(stage string) (*summary, error) {
	k, b, err := c.sc.next()
	if err != nil {
		return nil, fmt.Errorf("client: %s: read: %w", stage, err)
	}
	if k == kindEnd {
		return nil, &Error{Stage: stage, Condition: "stream closed by server"}
	}
	s := summarize(b)
	if s.name == "error" && s.space == "stream" {
		return nil, &Error{Stage: stage, Condition: "stream error " + s.cond(), Raw: string(b)}
	}
	return s, nil
}

func (c *Conn) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := io.WriteString(c.nc, s); err != nil {
		return fmt.Errorf("client: write: %w", err)
	}
	return nil
}

// JID is the full JID the server bound.
func (c *Conn) JID() string { return c.jid }

// Mechanism is the SASL mechanism that was used.
func (c *Conn) Mechanism() string { return c.mech }

// Send writes raw stanza bytes (one or more complete stanzas) as they are.
func (c *Conn) Send(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("client: send: %w", err)
	}
	return nil
}

// ReadStanza returns the raw bytes of the next stanza from the server. The
// slice is valid until the next call. io.EOF means the server closed the
// stream; a stream error is returned as *Error.
func (c *Conn) ReadStanza() ([]byte, error) {
	k, b, err := c.sc.next()
	if err != nil {
		return nil, err
	}
	if k == kindEnd {
		return nil, io.EOF
	}
	if k == kindHeader {
		return nil, &Error{Stage: "stream", Condition: "unexpected stream header"}
	}
	if bytes.HasPrefix(b, []byte("<stream:error")) {
		return nil, &Error{Stage: "stream", Condition: "stream error " + summarize(b).cond(), Raw: string(b)}
	}
	return b, nil
}

// SetReadDeadline bounds the next ReadStanza calls.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// Close ends the stream politely and closes the socket without waiting
// for the server's reply.
func (c *Conn) Close() error {
	c.wmu.Lock()
	if c.closed {
		c.wmu.Unlock()
		return nil
	}
	c.closed = true
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(c.nc, "</stream:stream>")
	c.wmu.Unlock()
	return c.nc.Close()
}

// Name returns the local name of a stanza's top element ("message", "iq",
// "presence"), read from its raw bytes.
func Name(stanza []byte) string {
	if len(stanza) < 2 || stanza[0] != '<' {
		return ""
	}
	end := bytes.IndexAny(stanza[1:], " \t\r\n/>")
	if end < 0 {
		return ""
	}
	n := string(stanza[1 : 1+end])
	if i := strings.IndexByte(n, ':'); i >= 0 {
		n = n[i+1:]
	}
	return n
}

// summary is what negotiation needs to know about one element.
type summary struct {
	raw         []byte
	name, space string // local name and prefix of the top element
	typ         string
	text        string // character data directly inside the top element
	jid         string // <jid> inside <bind>
	conds       []string
	feat        *features
}

type features struct {
	starttls bool
	mechs    map[string]bool
}

// cond is the first child element name that looks like a defined
// condition (errors, SASL failures).
func (s *summary) cond() string {
	for _, c := range s.conds {
		if c != "text" && c != "error" {
			return c
		}
	}
	if s.typ != "" {
		return s.name + " type=" + s.typ
	}
	return s.name
}

// summarize decodes one negotiation element with encoding/xml. The slow
// path is fine here: it runs a handful of times per login.
func summarize(b []byte) *summary {
	s := &summary{raw: b}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = false
	var stack []string
	var text strings.Builder
	for {
		tok, err := d.RawToken()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				s.name, s.space = t.Name.Local, t.Name.Space
				for _, a := range t.Attr {
					if a.Name.Local == "type" && a.Name.Space == "" {
						s.typ = a.Value
					}
				}
				if s.name == "features" {
					s.feat = &features{mechs: map[string]bool{}}
				}
			} else {
				s.conds = append(s.conds, t.Name.Local)
			}
			if s.feat != nil && t.Name.Local == "starttls" {
				s.feat.starttls = true
			}
			stack = append(stack, t.Name.Local)
			text.Reset()
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			if len(stack) == 0 {
				break
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			val := strings.TrimSpace(text.String())
			switch {
			case len(stack) == 0:
				if s.text == "" {
					s.text = val
				}
			case top == "mechanism" && s.feat != nil:
				s.feat.mechs[val] = true
			case top == "jid":
				s.jid = val
			}
			text.Reset()
		}
	}
	return s
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
