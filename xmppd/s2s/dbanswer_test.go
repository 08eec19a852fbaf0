package s2s_test

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/s2s"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// XEP-0220 §2.1.3 / XEP-0288 §5: the receiving server's answer must name
// the pair we asked about. A "valid" for another pair must not let our
// stanzas out on the stream.
// handPeer starts a.test, has alice send x@peer.test a message (id o1),
// and plays peer.test by hand on the stream a.test opens: STARTTLS, then
// dialback and bidi offered; it returns once a.test has asked for bidi and
// sent its db:result.
func handPeer(t *testing.T, tune ...func(*s2s.Config)) (alice, s *xmpptest.Client) {
	t.Helper()
	w := newWorld(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	w.dns.SRV(t, "xmpp-server", "peer.test", 0, 0, ln.Addr().(*net.TCPAddr).Port, "xmpp.peer.test")
	w.dns.Host(t, "xmpp.peer.test", "127.0.0.1")
	dir := t.TempDir()
	w.ca.Issue(t, filepath.Join(dir, "p.pem"), filepath.Join(dir, "p.key"), "peer.test")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "p.pem"), filepath.Join(dir, "p.key"))
	if err != nil {
		t.Fatal(err)
	}
	a := w.start(t, "a.test", nil, func(c *s2s.Config) {
		c.NoClientCert = true
		for _, f := range tune {
			f(c)
		}
	})
	alice = a.login(t, "alice")
	alice.Send("<message to='x@peer.test' type='chat' id='o1'><body>hello</body></message>")

	// peer.test, literally: STARTTLS, then dialback and bidi offered.
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	s = &xmpptest.Client{T: t, Raw: raw, C: raw, P: stream.NewParser(raw, stream.PostAuthLimits)}
	header := "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='peer.test' to='a.test' id='s1' version='1.0'>"
	if ev, err := s.Next(); err != nil || ev.Kind != stream.Open {
		t.Fatalf("header: %v", err)
	}
	s.Send(header + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><bidi xmlns='urn:xmpp:features:bidi'/></stream:features>")
	if el := s.El(); el.Local != "starttls" {
		t.Fatalf("want starttls, got %s", el)
	}
	s.Send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	s.C = tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}})
	s.P = stream.NewParser(s.C, stream.PostAuthLimits)
	if ev, err := s.Next(); err != nil || ev.Kind != stream.Open {
		t.Fatalf("header after TLS: %v", err)
	}
	s.Send(header + "<stream:features><dialback xmlns='urn:xmpp:features:dialback'/><bidi xmlns='urn:xmpp:features:bidi'/></stream:features>")
	if el := s.El(); el.Space != "urn:xmpp:bidi" || el.Local != "bidi" {
		t.Fatalf("want <bidi/> before authentication, got %s", el)
	}
	if el := s.El(); el.Local != "result" || el.Get("from") != "a.test" {
		t.Fatalf("want db:result, got %s", el)
	}
	return alice, s
}

func TestDialbackAnswerForAnotherPair(t *testing.T) {
	_, s := handPeer(t)
	s.Send("<db:result from='other.test' to='a.test' type='valid'/>")
	for {
		ev, err := s.Next()
		if err != nil || ev.Kind == stream.Close {
			return // the stream ended without alice's message: right
		}
		if ev.El != nil && ev.El.Get("id") == "o1" {
			t.Fatalf("alice's message went out after a dialback answer for another pair: %s", ev.El)
		}
	}
}
