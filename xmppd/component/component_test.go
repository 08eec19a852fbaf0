package component_test

import (
	"crypto/sha1"
	"encoding/hex"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/component"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const host = "push." + xmpptest.Domain

// comp is a deliberately literal XEP-0114 component.
type comp struct {
	t  *testing.T
	c  net.Conn
	p  *stream.Parser
	id string
}

func dial(t *testing.T, l *component.Listener, to string) *comp {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	x := &comp{t: t, c: c, p: stream.NewParser(c, stream.PostAuthLimits)}
	x.send("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='" + to + "'>")
	ev := x.next()
	if ev.Kind != stream.Open {
		t.Fatalf("no stream header: %v", ev.Kind)
	}
	x.id = x.p.Header().Get("id")
	return x
}

func (x *comp) send(s string) {
	x.t.Helper()
	if _, err := io.WriteString(x.c, s); err != nil {
		x.t.Fatal(err)
	}
}

func (x *comp) next() stream.Event {
	x.t.Helper()
	x.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	ev, err := x.p.Next()
	if err != nil {
		x.t.Fatalf("read: %v", err)
	}
	return ev
}

func (x *comp) el() *stream.Element {
	x.t.Helper()
	ev := x.next()
	if ev.Kind != stream.Stanza {
		x.t.Fatalf("got %v, want an element", ev.Kind)
	}
	return ev.El
}

func (x *comp) handshake(secret string) *stream.Element {
	x.t.Helper()
	sum := sha1.Sum([]byte(x.id + secret))
	x.send("<handshake>" + hex.EncodeToString(sum[:]) + "</handshake>")
	return x.el()
}

// expect reads a client's stream until pred matches.
func expect(t *testing.T, c *xmpptest.Client, what string, pred func(*stream.Element) bool) *stream.Element {
	t.Helper()
	for range 50 {
		if el := c.El(); pred(el) {
			return el
		}
	}
	t.Fatalf("never got %s", what)
	return nil
}

func errCond(el *stream.Element) string {
	if e := el.Child(stream.NSClient, "error"); e != nil && e.FirstChild() != nil {
		return e.FirstChild().Local
	}
	return ""
}

func start(t *testing.T) (*xmppd.Daemon, *component.Listener, string) {
	t.Helper()
	d := xmpptest.Start(t, nil)
	secret, err := component.SecretFile(filepath.Join(t.TempDir(), "component-secret"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := component.Listen(d.Server, "127.0.0.1:0", host, secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return d, l, secret
}

func TestSecretFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s")
	a, err := component.SecretFile(p)
	if err != nil || len(a) != 32 {
		t.Fatalf("secret %q, %v", a, err)
	}
	if b, _ := component.SecretFile(p); b != a {
		t.Fatalf("secret changed: %q then %q", a, b)
	}
}

func TestListenRefuses(t *testing.T) {
	d := xmpptest.Start(t, nil)
	for _, c := range []struct{ addr, host, secret string }{
		{"0.0.0.0:0", host, "0123456789abcdef"},              // not loopback
		{"127.0.0.1:0", xmpptest.Domain, "0123456789abcdef"}, // the server's own domain
		{"127.0.0.1:0", "a@" + host, "0123456789abcdef"},
		{"127.0.0.1:0", host, "short"},
	} {
		if l, err := component.Listen(d.Server, c.addr, c.host, c.secret); err == nil {
			l.Close()
			t.Errorf("Listen(%q, %q, %q) accepted", c.addr, c.host, c.secret)
		}
	}
}

func TestHandshake(t *testing.T) {
	_, l, secret := start(t)
	if el := dial(t, l, host).handshake("wrong secret"); el.Local != "error" || el.FirstChild().Local != "not-authorized" {
		t.Fatalf("wrong secret: %s", el)
	}
	if el := dial(t, l, "other.example").el(); el.Local != "error" || el.FirstChild().Local != "host-unknown" {
		t.Fatalf("wrong host: %s", el)
	}
	x := dial(t, l, host)
	if el := x.handshake(secret); el.Local != "handshake" || el.Space != component.NS {
		t.Fatalf("handshake: %s", el)
	}
	if el := dial(t, l, host).handshake(secret); el.Local != "error" || el.FirstChild().Local != "conflict" {
		t.Fatalf("second connection: %s", el)
	}
}

// TestRouting: a client's message reaches the component in its namespace;
// the component's reaches the client; a stanza from another domain ends
// the component's stream; without a component, a message bounces.
func TestRouting(t *testing.T) {
	d, l, secret := start(t)
	a := xmpptest.Login(t, d, "alice", "a")
	a.Send("<message to='x@" + host + "' id='m0' type='chat'><body>nobody there</body></message>")
	if el := expect(t, a, "bounce", func(el *stream.Element) bool { return el.Get("id") == "m0" }); errCond(el) != "remote-server-not-found" {
		t.Fatalf("no component: %s", el)
	}
	x := dial(t, l, host)
	x.handshake(secret)
	a.Send("<message to='x@" + host + "' type='chat'><body>hello</body></message>")
	el := x.el()
	if el.Space != component.NS || el.Local != "message" || el.ChildText(component.NS, "body") != "hello" || el.Get("from") != "alice@"+xmpptest.Domain+"/a" {
		t.Fatalf("component got %s", el)
	}
	x.send("<message from='x@" + host + "' to='alice@" + xmpptest.Domain + "/a' type='chat'><body>back</body></message>")
	if got := expect(t, a, "message", func(el *stream.Element) bool { return el.Local == "message" }); got.ChildText(stream.NSClient, "body") != "back" || got.Get("from") != "x@"+host {
		t.Fatalf("alice got %s", got)
	}
	x.send("<message from='mallory@" + xmpptest.Domain + "' to='alice@" + xmpptest.Domain + "/a'><body>spoof</body></message>")
	for {
		el := x.el()
		if el.Local == "error" {
			if el.FirstChild().Local != "invalid-from" {
				t.Fatalf("spoofed from: %s", el)
			}
			break
		}
	}
	// The spoofed message was not delivered: the next thing alice gets is
	// the answer to her ping.
	a.Send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := a.El(); el.Get("id") != "p" {
		t.Fatalf("alice got %s", el)
	}
	if !strings.Contains(l.Host(), "push.") {
		t.Fatal(l.Host())
	}
}
