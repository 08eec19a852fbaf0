package s2s

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// target is one place a domain's server may be reached.
type target struct {
	host      string
	port      int
	directTLS bool // XEP-0368 _xmpps-server: TLS from the first byte
}

// errNotFound marks failures that retrying will not fix soon: the domain
// has no server (no SRV target, no address) or only ones policy refuses.
// Its stanzas bounce at once with remote-server-not-found.
type errNotFound struct{ err error }

func (e *errNotFound) Error() string { return e.err.Error() }
func (e *errNotFound) Unwrap() error { return e.err }

func notFound(format string, a ...any) error { return &errNotFound{fmt.Errorf(format, a...)} }

// targets looks up where domain's server is: the _xmpps-server (direct
// TLS) and _xmpp-server (STARTTLS) records merged by priority, direct TLS
// first at equal priority (it saves a round trip); with no records at
// all, the domain itself on the default port (RFC 6120 §3.2.2).
func (s *S2S) targets(ctx context.Context, domain string) ([]target, error) {
	type rec struct {
		t    target
		prio uint16
	}
	var recs []rec
	var hard int // lookups that failed for another reason than "no such record"
	for _, svc := range []struct {
		name   string
		direct bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, srvs, err := s.cfg.Resolver.LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			var de *net.DNSError
			if !errors.As(err, &de) || !de.IsNotFound {
				hard++
			}
			continue
		}
		for _, r := range srvs {
			recs = append(recs, rec{target{strings.TrimSuffix(r.Target, "."), int(r.Port), svc.direct}, r.Priority})
		}
	}
	if len(recs) == 0 {
		if hard == 2 {
			// The DNS server did not answer: worth retrying.
			return nil, fmt.Errorf("s2s: SRV lookup for %s failed", domain)
		}
		return []target{{host: domain, port: s.cfg.Port}}, nil
	}
	// LookupSRV already ordered each list by priority and shuffled by
	// weight; a stable sort keeps that within a priority.
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].prio != recs[j].prio {
			return recs[i].prio < recs[j].prio
		}
		return recs[i].t.directTLS && !recs[j].t.directTLS
	})
	out := make([]target, 0, len(recs))
	for _, r := range recs {
		if r.t.host == "" {
			continue // "." : the service is decidedly not available (RFC 2782)
		}
		out = append(out, r.t)
	}
	if len(out) == 0 {
		return nil, notFound("s2s: %s offers no XMPP server (SRV target \".\")", domain)
	}
	return out, nil
}

// refusedIP says why an address a peer's name resolved to may not be
// dialled ("" if it may): loopback, link-local, unspecified, multicast and
// this machine's own addresses reach the box itself or its LAN neighbours'
// unprotected services, not another XMPP server.
func (s *S2S) refusedIP(ip net.IP) string {
	if s.cfg.AllowLocal {
		return ""
	}
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsUnspecified(), ip.IsMulticast():
		return "not a host address"
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return "this box's own address"
			}
		}
	}
	return ""
}

// outConn is an outgoing stream after TLS, before authentication.
type outConn struct {
	local    string // the domain of ours this stream speaks for
	c        net.Conn
	p        *stream.Parser
	id       string          // the peer's stream id
	features *stream.Element // its stream features
	certOK   bool            // its certificate is valid for the domain
}

// dial finds domain's server and opens a TLS-protected stream to it from
// local (our domain, or one of its services: each needs its own
// authenticated stream, since a peer accepts stanzas only from the
// domains a stream authenticated).
func (s *S2S) dial(ctx context.Context, local, domain string) (*outConn, error) {
	if IsOnion(domain) {
		// Before any lookup: an onion name goes to tor only (onion.go).
		return s.dialOnion(ctx, local, domain)
	}
	ts, err := s.targets(ctx, domain)
	if err != nil {
		return nil, err
	}
	var errs []error
	reached := false // some address was allowed and tried
	for _, t := range ts {
		ips, err := s.cfg.Resolver.LookupIPAddr(ctx, t.host)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.host, err))
			continue
		}
		for _, ip := range ips {
			if why := s.refusedIP(ip.IP); why != "" {
				errs = append(errs, fmt.Errorf("%s resolves to %s (%s): refused", t.host, ip.IP, why))
				continue
			}
			reached = true
			addr := net.JoinHostPort(ip.IP.String(), strconv.Itoa(t.port))
			oc, err := s.open(ctx, local, domain, t, func(ctx context.Context) (net.Conn, error) {
				d := net.Dialer{Timeout: s.cfg.DialTimeout}
				return d.DialContext(ctx, "tcp", addr)
			})
			if err == nil {
				return oc, nil
			}
			errs = append(errs, fmt.Errorf("%s (%s): %w", t.host, ip.IP, err))
		}
	}
	err = fmt.Errorf("s2s: cannot reach %s: %w", domain, errors.Join(errs...))
	if !reached {
		// No address at all, or only refused ones. A name that does not
		// resolve is likely a typo or a dead domain; tell the sender now
		// instead of after the retry time.
		return nil, &errNotFound{err}
	}
	return nil, err
}

// open connects (directly, or through tor for an onion domain) and
// negotiates TLS (direct or STARTTLS).
func (s *S2S) open(ctx context.Context, local, domain string, t target, connect func(context.Context) (net.Conn, error)) (*outConn, error) {
	c, err := connect(ctx)
	if err != nil {
		return nil, err
	}
	if !s.track(c) {
		c.Close()
		return nil, errClosed
	}
	ok := false
	defer func() {
		if !ok {
			s.untrack(c)
			c.Close()
		}
	}()
	negotiate := s.cfg.NegotiateTimeout
	if IsOnion(t.host) {
		// Each round trip crosses a six-hop circuit, and the peer's
		// dialback check connects back to us through tor first.
		negotiate += s.onionDialTimeout()
	}
	c.SetDeadline(time.Now().Add(negotiate))
	oc := &outConn{c: c, local: local}
	if t.directTLS {
		if err := s.clientTLS(oc, domain, true); err != nil {
			return nil, err
		}
	} else {
		if err := s.restart(oc, domain); err != nil {
			return nil, err
		}
		if oc.features.Child(nsTLS, "starttls") == nil {
			// TLS is required both ways: a peer that does not offer it
			// is not talked to.
			return nil, errors.New("peer does not offer STARTTLS")
		}
		if _, err := c.Write([]byte("<starttls xmlns='" + nsTLS + "'/>")); err != nil {
			return nil, err
		}
		el, err := next(oc.p)
		if err != nil {
			return nil, err
		}
		if el.Space != nsTLS || el.Local != "proceed" {
			return nil, fmt.Errorf("STARTTLS refused: <%s/>", el.Local)
		}
		if err := s.clientTLS(oc, domain, false); err != nil {
			return nil, err
		}
	}
	if err := s.restart(oc, domain); err != nil {
		return nil, err
	}
	ok = true
	return oc, nil
}

// clientTLS runs the TLS handshake on oc. The certificate is checked here
// by hand (RFC 6125 DNS-ID against the roots): one that fails does not
// end the connection, it only means dialback must authenticate the peer.
func (s *S2S) clientTLS(oc *outConn, domain string, alpn bool) error {
	cfg := &tls.Config{
		ServerName:         domain,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // checked below, by name, against our roots
	}
	if alpn {
		cfg.NextProtos = []string{"xmpp-server"}
	}
	if s.cfg.Certs != nil && !s.cfg.NoClientCert {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.cfg.Certs.Get(nil)
		}
	}
	tc := tls.Client(oc.c, cfg)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	oc.c = tc
	oc.certOK = s.certValid(tc.ConnectionState().PeerCertificates, domain)
	oc.p = nil
	return nil
}

// certValid checks a peer's certificate chain for domain (RFC 6125
// DNS-ID, wildcards included) against the roots. Any extended key usage
// is accepted: servers present their server certificate as a client
// certificate too, and many carry only serverAuth.
func (s *S2S) certValid(chain []*x509.Certificate, domain string) bool {
	if len(chain) == 0 || domain == "" {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		DNSName: domain, Roots: s.cfg.Roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err == nil
}

// restart opens a (new) stream on oc and reads the peer's header and
// features.
func (s *S2S) restart(oc *outConn, domain string) error {
	if _, err := oc.c.Write([]byte(header(oc.local, domain, ""))); err != nil {
		return err
	}
	if oc.p == nil {
		oc.p = stream.NewParser(oc.c, stream.PreAuthLimits)
	} else {
		oc.p.Restart()
	}
	ev, err := oc.p.Next()
	if err != nil {
		return err
	}
	if ev.Kind != stream.Open || oc.p.DefaultNS() != NSServer {
		return errors.New("peer did not open a jabber:server stream")
	}
	oc.id = oc.p.Header().Get("id")
	f, err := next(oc.p)
	if err != nil {
		return err
	}
	if f.Space != stream.NSStream || f.Local != "features" {
		return fmt.Errorf("expected stream features, got <%s/>", f.Local)
	}
	oc.features = f
	return nil
}

// refusals are the stream errors by which a peer turns us away for good
// (it does not serve the domain, or will not accept us: prosody with
// s2s_secure_auth ends the stream with not-authorized when our
// certificate does not name our domain). Retrying them for RetryFor (5
// minutes) only kept the sender waiting for the same answer
// (TestWrongNameCertificate); they bounce at once, like a domain that
// does not resolve. Others (system-shutdown, resource-constraint, ...) are
// retried.
var refusals = map[string]bool{"not-authorized": true, "host-unknown": true, "host-gone": true, "policy-violation": true}

// next reads the next top-level element; a stream error or the end of
// the stream is an error.
func next(p *stream.Parser) (*stream.Element, error) {
	for {
		ev, err := p.Next()
		if err != nil {
			return nil, err
		}
		switch ev.Kind {
		case stream.Close:
			return nil, errors.New("peer closed the stream")
		case stream.Stanza:
			if ev.El.Space == stream.NSStream && ev.El.Local == "error" {
				cond := ""
				if c := ev.El.FirstChild(); c != nil {
					cond = c.Local
				}
				err := fmt.Errorf("stream error from peer: %s", cond)
				if refusals[cond] {
					return nil, &errNotFound{err}
				}
				return nil, err
			}
			return ev.El, nil
		}
	}
}

// authenticate proves to the peer that we are our domain: SASL EXTERNAL
// when it offers it and its certificate checked (so that we know whom we
// present ours to), else dialback.
func (s *S2S) authenticate(oc *outConn, domain string) (method string, err error) {
	if oc.certOK && s.cfg.Certs != nil && !s.cfg.NoClientCert && hasMech(oc.features, "EXTERNAL") {
		auth := stream.New(nsSASL, "auth", "mechanism", "EXTERNAL").AddText(base64.StdEncoding.EncodeToString([]byte(oc.local)))
		if err := write(oc.c, auth); err != nil {
			return "", err
		}
		el, err := next(oc.p)
		if err != nil {
			return "", err
		}
		if el.Space == nsSASL && el.Local == "success" {
			if err := s.restart(oc, domain); err != nil {
				return "", err
			}
			return "EXTERNAL", nil
		}
		// A failure (the peer does not trust our certificate after all):
		// dialback on the same stream.
	}
	key := Key(s.cfg.Secret, domain, oc.local, oc.id)
	if err := write(oc.c, dbElement("result", "from", oc.local, "to", domain).AddText(key)); err != nil {
		return "", err
	}
	for {
		el, err := next(oc.p)
		if err != nil {
			return "", err
		}
		if el.Space != NSDialback || el.Local != "result" {
			continue // nothing else is expected before the answer
		}
		// The answer must be for the pair we asked about (XEP-0220 §2.1.3;
		// XEP-0288 §5 warns of exactly this on bidirectional streams): a
		// "valid" for another pair authenticates nothing we sent.
		if !strings.EqualFold(el.Get("from"), domain) || !strings.EqualFold(el.Get("to"), oc.local) {
			return "", fmt.Errorf("peer answered dialback for %s → %s, not %s → %s", el.Get("to"), el.Get("from"), oc.local, domain)
		}
		switch el.Get("type") {
		case "valid":
			return "dialback", nil
		case "invalid":
			return "", errors.New("peer found our dialback key invalid")
		default:
			// XEP-0220 §2.6: the peer will not take stanzas from us (it
			// blocks us, or cannot reach our server to verify): retrying
			// for minutes would only delay the senders' error.
			return "", &errNotFound{fmt.Errorf("dialback error from peer: %s", el.String())}
		}
	}
}

func hasMech(features *stream.Element, name string) bool {
	m := features.Child(nsSASL, "mechanisms")
	if m == nil {
		return false
	}
	for _, c := range m.Children() {
		if c.Local == "mechanism" && strings.EqualFold(strings.TrimSpace(c.Text()), name) {
			return true
		}
	}
	return false
}

// verify asks domain's authoritative server whether key is the key it
// gave out for stream id to local (XEP-0220 §2.3, the connect-back).
func (s *S2S) verify(ctx context.Context, local, domain, id, key string) (bool, error) {
	oc, err := s.dial(ctx, local, domain)
	if err != nil {
		return false, err
	}
	defer func() {
		oc.c.Write([]byte("</stream:stream>"))
		s.untrack(oc.c)
		oc.c.Close()
	}()
	if err := write(oc.c, dbElement("verify", "from", local, "to", domain, "id", id).AddText(key)); err != nil {
		return false, err
	}
	for {
		el, err := next(oc.p)
		if err != nil {
			return false, err
		}
		if el.Space == NSDialback && el.Local == "verify" && el.Get("id") == id {
			return el.Get("type") == "valid", nil
		}
	}
}

// header is a jabber:server stream header from from to to; id is set on
// the answering side.
func header(from, to, id string) string {
	b := []byte("<?xml version='1.0'?><stream:stream xmlns='" + NSServer + "' xmlns:stream='" + stream.NSStream +
		"' xmlns:db='" + NSDialback + "' version='1.0'")
	b = appendAttr(b, "from", from)
	b = appendAttr(b, "to", to)
	b = appendAttr(b, "id", id)
	return string(append(b, '>'))
}

func appendAttr(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = stream.AppendEscaped(b, v, true)
	return append(b, '\'')
}

// write serializes el onto c in the jabber:server stream.
func write(c net.Conn, els ...*stream.Element) error {
	var b []byte
	for _, el := range els {
		b = el.Append(b, NSServer)
	}
	_, err := c.Write(b)
	return err
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
