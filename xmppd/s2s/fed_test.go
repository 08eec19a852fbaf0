package s2s_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/s2s"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// logBuf keeps a box's federation log, to tell which authentication a
// link used.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
	t  testing.TB
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("%s", bytes.TrimSpace(p))
	return l.b.Write(p)
}

func (l *logBuf) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}

type box struct {
	d      *xmppd.Daemon
	domain string
	log    *logBuf
	state  state.Dir // its state directory (w.start's boxes)
}

type world struct {
	dns *s2s.TestDNS
	ca  *s2s.TestCA
}

func newWorld(t *testing.T) *world {
	return &world{dns: s2s.StartDNS(t), ca: s2s.NewCA(t, t.TempDir())}
}

// start runs a box for domain on loopback, with a certificate from the
// test CA, published in the test zone.
func (w *world) start(t *testing.T, domain string, fed *config.Federation, tune func(*s2s.Config)) *box {
	t.Helper()
	b := &box{domain: domain, log: &logBuf{t: t}}
	b.d = xmpptest.Start(t, func(o *xmppd.Options) {
		o.Domain = domain
		// Members' reading is not shaped here: these tests are about the
		// links between servers (TestPeerThatNeverReads sends megabytes
		// through a member).
		o.NoShaping = true
		b.state = o.State
		tls := o.State.TLS()
		w.ca.Issue(t, filepath.Join(tls, "cert.pem"), filepath.Join(tls, "key.pem"), domain, "groups."+domain, "upload."+domain)
		if fed != nil {
			c := config.Default()
			c.Domain, c.Federation = domain, *fed
			if err := o.State.Ensure(); err != nil {
				t.Fatal(err)
			}
			if err := config.Save(o.State.Config(), c); err != nil {
				t.Fatal(err)
			}
		}
		o.S2S = xmppd.S2SOptions{Listen: "127.0.0.1:0", ListenTLS: "127.0.0.1:0", Resolver: w.dns.Addr, CAFile: w.ca.PEMFile, AllowLocal: true,
			Tune: func(c *s2s.Config) {
				c.Log = slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
				if tune != nil {
					tune(c)
				}
			}}
	})
	if b.d.S2SAddr() == nil {
		t.Fatalf("%s: no s2s listener", domain)
	}
	port := b.d.S2SAddr().(*net.TCPAddr).Port
	// Its services federate too (a peer verifies their dialback keys
	// by connecting back to them).
	w.dns.Host(t, "xmpp."+domain, "127.0.0.1")
	for _, d := range []string{domain, "groups." + domain} {
		// Replaced: a test may have pointed the domain at a dead port.
		w.dns.Replace(t, s2s.SRVRecord("xmpp-server", d, 0, 0, port, "xmpp."+domain))
	}
	return b
}

func open(c *xmpptest.Client, domain string) *stream.Element {
	c.T.Helper()
	c.Send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "' version='1.0'>")
	ev, err := c.Next()
	if err != nil || ev.Kind != stream.Open {
		c.T.Fatalf("stream header: %v %v", ev.Kind, err)
	}
	return c.El()
}

// login logs user in on b with resource "r" and sends available presence.
func (b *box) login(t *testing.T, user string) *xmpptest.Client {
	t.Helper()
	c := xmpptest.Dial(t, b.d.C2STLSAddr, true)
	open(c, b.domain)
	if el := c.Auth("SCRAM-SHA-256", user, user+"-pw"); el.Local != "success" {
		t.Fatalf("auth: %s", el)
	}
	open(c, b.domain)
	c.Bind("r")
	c.Send("<presence/>")
	return c
}

func expect(t *testing.T, c *xmpptest.Client, what string, pred func(*stream.Element) bool) *stream.Element {
	t.Helper()
	for range 100 {
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

func message(from, to string) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		return el.Local == "message" && strings.HasPrefix(el.Get("from"), from) && el.Get("type") != "error" &&
			el.ChildText(stream.NSClient, "body") != "" && strings.HasPrefix(el.Get("to"), to)
	}
}

// exchange sends a message each way between alice@a and bob@b.
func exchange(t *testing.T, a, b *box) {
	alice, bob := a.login(t, "alice"), b.login(t, "bob")
	alice.Send("<message to='bob@" + b.domain + "' type='chat' id='m1'><body>hello from " + a.domain + "</body></message>")
	el := expect(t, bob, "alice's message", message("alice@"+a.domain+"/r", "bob@"+b.domain))
	if got := el.ChildText(stream.NSClient, "body"); got != "hello from "+a.domain {
		t.Fatalf("bob got %q", got)
	}
	bob.Send("<message to='alice@" + a.domain + "/r' type='chat' id='m2'><body>hello back</body></message>")
	expect(t, alice, "bob's answer", message("bob@"+b.domain+"/r", "alice@"+a.domain))

	// From a service of a.test's (its group chats): a stream of its own,
	// authenticated for that domain, else b.test ends it (invalid-from).
	if a.d.Server.Service("groups."+a.domain) == nil {
		t.Fatal("no groups service")
	}
	a.d.Server.Route(stream.New(stream.NSClient, "message", "from", "groups."+a.domain, "to", "bob@"+b.domain+"/r", "type", "chat", "id", "svc").
		Add(stream.New(stream.NSClient, "body").AddText("from the service")))
	expect(t, bob, "the service's message", message("groups."+a.domain, "bob@"+b.domain))

	// A presence subscription across: bob sees the request, approves,
	// and alice learns it.
	alice.Send("<presence to='bob@" + b.domain + "' type='subscribe'/>")
	expect(t, bob, "the subscription request", func(el *stream.Element) bool {
		return el.Local == "presence" && el.Get("type") == "subscribe" && el.Get("from") == "alice@"+a.domain
	})
	bob.Send("<presence to='alice@" + a.domain + "' type='subscribed'/>")
	expect(t, alice, "the approval", func(el *stream.Element) bool {
		return el.Local == "presence" && el.Get("type") == "subscribed" && el.Get("from") == "bob@"+b.domain
	})
}

func TestFederationDialback(t *testing.T) {
	w := newWorld(t)
	// Neither box offers a client certificate: each must prove its domain
	// by dialback, and the receiving box must connect back to verify.
	noCert := func(c *s2s.Config) { c.NoClientCert = true }
	a := w.start(t, "a.test", nil, noCert)
	b := w.start(t, "b.test", nil, noCert)
	exchange(t, a, b)
	for _, x := range []*box{a, b} {
		if !x.log.has("auth=dialback") || x.log.has("auth=EXTERNAL") {
			t.Errorf("%s: links not (only) authenticated by dialback", x.domain)
		}
	}
}

func TestFederationExternal(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", nil, nil)
	b := w.start(t, "b.test", nil, nil)
	exchange(t, a, b)
	for _, x := range []*box{a, b} {
		if !x.log.has("auth=EXTERNAL") || x.log.has("auth=dialback") {
			t.Errorf("%s: links not authenticated by certificate (SASL EXTERNAL)", x.domain)
		}
	}
}

// deadDomain gives domain a server in the test zone that refuses every
// connection (a loopback port nobody listens on).
func (w *world) deadDomain(t *testing.T, domain string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // connections are refused from now on
	w.dns.SRV(t, "xmpp-server", domain, 0, 0, port, "xmpp."+domain)
	w.dns.Host(t, "xmpp."+domain, "127.0.0.1")
}

// A dead domain: what is queued for it bounces to its senders after the
// bounded retry time, what exceeds the queue's cap bounces at once, and
// nothing is lost or kept.
func TestDeadDomainBounces(t *testing.T) {
	w := newWorld(t)
	w.deadDomain(t, "dead.test")
	const capN, total = 20, 100
	a := w.start(t, "a.test", nil, func(c *s2s.Config) {
		c.MaxQueue, c.RetryFor, c.RetryMin, c.RetryMax = capN, 3*time.Second, 50*time.Millisecond, 200*time.Millisecond
	})
	alice := a.login(t, "alice")
	start := time.Now()
	go func() {
		for i := range total {
			alice.C.SetWriteDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(alice.C, "<message to='bob@dead.test' type='chat' id='d%d'><body>%d</body></message>", i, i)
		}
		// And one to a domain that does not exist at all.
		fmt.Fprintf(alice.C, "<message to='bob@nowhere.test' type='chat' id='nx'><body>?</body></message>")
	}()
	got := map[string]string{}
	count := map[string]int{}
	for len(got) < total+1 {
		el := expect(t, alice, "a bounce", func(el *stream.Element) bool { return el.Local == "message" && el.Get("type") == "error" })
		id := el.Get("id")
		if prev, dup := got[id]; dup {
			t.Fatalf("%s bounced twice (%s, %s)", id, prev, errCond(el))
		}
		got[id] = errCond(el)
		count[errCond(el)]++
		if id == "nx" && time.Since(start) > 2*time.Second {
			t.Errorf("a domain that does not exist bounced only after %v", time.Since(start))
		}
	}
	if got["nx"] != "remote-server-not-found" {
		t.Errorf("nowhere.test: %q, want remote-server-not-found", got["nx"])
	}
	if count["remote-server-timeout"] != capN || count["resource-constraint"] != total-capN {
		t.Errorf("bounces %v, want %d remote-server-timeout (the queue) and %d resource-constraint (over its cap)", count, capN, total-capN)
	}
	if el := time.Since(start); el < 2*time.Second {
		t.Errorf("queued stanzas bounced after %v, before the retry time", el)
	}
	if n, bytes := a.d.S2S().Queued(); n != 0 || bytes != 0 {
		t.Errorf("after the bounces %d stanzas (%d bytes) still queued", n, bytes)
	}
}

func TestPolicy(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", &config.Federation{Block: []string{"b.test"}}, nil)
	b := w.start(t, "b.test", nil, nil)
	c := w.start(t, "c.test", nil, nil)
	alice := a.login(t, "alice")
	alice.Send("<message to='bob@b.test' type='chat' id='blocked'><body>x</body></message>")
	el := expect(t, alice, "the bounce", func(el *stream.Element) bool { return el.Get("id") == "blocked" })
	if errCond(el) != "not-allowed" {
		t.Errorf("to a blocked domain: %s", el)
	}
	// A limited (local only) member cannot reach another domain at all.
	if err := invites.SetRole(a.d.Store, "bob", invites.RoleLimited); err != nil {
		t.Fatal(err)
	}
	bob := a.login(t, "bob")
	bob.Send("<message to='alice@c.test' type='chat' id='lim'><body>x</body></message>")
	el = expect(t, bob, "the bounce", func(el *stream.Element) bool { return el.Get("id") == "lim" })
	if errCond(el) != "not-allowed" {
		t.Errorf("limited member to another domain: %s", el)
	}
	// A member may.
	cbob := c.login(t, "bob")
	alice.Send("<message to='bob@c.test' type='chat' id='ok'><body>x</body></message>")
	expect(t, cbob, "alice's message", message("alice@a.test/r", "bob@c.test"))
	// And a.test refuses b.test inbound too: b's member learns at once.
	balice := b.login(t, "alice")
	balice.Send("<message to='bob@a.test' type='chat' id='in'><body>x</body></message>")
	el = expect(t, balice, "the bounce", func(el *stream.Element) bool { return el.Get("id") == "in" })
	if errCond(el) != "remote-server-not-found" {
		t.Errorf("from a blocked domain: %s", el)
	}
}

// peer is a deliberately literal remote server.
type peer struct {
	*xmpptest.Client
	id string
}

func dialPeer(t *testing.T, b *box, from string) *peer {
	t.Helper()
	c := xmpptest.Dial(t, b.d.S2SAddr(), false)
	p := &peer{Client: c}
	p.open(from, b.domain)
	return p
}

func (p *peer) open(from, to string) *stream.Element {
	p.T.Helper()
	p.Send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='" + from + "' to='" + to + "' version='1.0'>")
	ev, err := p.Next()
	if err != nil || ev.Kind != stream.Open {
		p.T.Fatalf("stream header: %v %v", ev.Kind, err)
	}
	p.id = p.P.Header().Get("id")
	return p.El()
}

// starttls upgrades the stream, presenting cert (nil: none).
func (p *peer) starttls(from, to string, cert *tls.Certificate) *stream.Element {
	p.T.Helper()
	p.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if el := p.El(); el.Local != "proceed" {
		p.T.Fatalf("starttls: %s", el)
	}
	cfg := &tls.Config{InsecureSkipVerify: true}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	p.C = tls.Client(p.Raw, cfg)
	p.P = stream.NewParser(p.C, stream.PostAuthLimits)
	return p.open(from, to)
}

func TestInboundRules(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", nil, nil)
	w.start(t, "b.test", nil, nil)
	dir := t.TempDir()
	w.ca.Issue(t, filepath.Join(dir, "evil.pem"), filepath.Join(dir, "evil.key"), "evil.test")
	evil, err := tls.LoadX509KeyPair(filepath.Join(dir, "evil.pem"), filepath.Join(dir, "evil.key"))
	if err != nil {
		t.Fatal(err)
	}
	msg := func(from, to string) string {
		return "<message from='" + from + "' to='" + to + "' type='chat' id='x'><body>hi</body></message>"
	}

	t.Run("before TLS", func(t *testing.T) {
		p := dialPeer(t, a, "evil.test")
		p.Send(msg("x@evil.test", "bob@a.test"))
		p.StreamError("not-authorized")
	})
	t.Run("before authentication", func(t *testing.T) {
		p := dialPeer(t, a, "evil.test")
		f := p.starttls("evil.test", "a.test", nil)
		if f.Child("urn:xmpp:features:dialback", "dialback") == nil {
			t.Errorf("no dialback offered: %s", f)
		}
		p.Send(msg("x@evil.test", "bob@a.test"))
		p.StreamError("not-authorized")
	})
	t.Run("invalid-from", func(t *testing.T) {
		bob := a.login(t, "bob")
		p := dialPeer(t, a, "evil.test")
		f := p.starttls("evil.test", "a.test", &evil)
		if !strings.Contains(f.String(), "EXTERNAL") {
			t.Fatalf("EXTERNAL not offered to a peer with a valid certificate: %s", f)
		}
		p.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" + base64.StdEncoding.EncodeToString([]byte("evil.test")) + "</auth>")
		if el := p.El(); el.Local != "success" {
			t.Fatalf("EXTERNAL: %s", el)
		}
		p.P.Restart()
		p.open("evil.test", "a.test")
		p.Send(msg("x@evil.test", "bob@a.test"))
		expect(t, bob, "the message from evil.test", message("x@evil.test", "bob@a.test"))
		// Its certificate says evil.test: it may not speak for b.test.
		p.Send(msg("alice@b.test", "bob@a.test"))
		p.StreamError("invalid-from")
	})
	t.Run("EXTERNAL for another domain", func(t *testing.T) {
		p := dialPeer(t, a, "b.test")
		p.starttls("b.test", "a.test", &evil)
		p.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" + base64.StdEncoding.EncodeToString([]byte("b.test")) + "</auth>")
		if el := p.El(); el.Local != "failure" {
			t.Fatalf("EXTERNAL as b.test with evil.test's certificate: %s", el)
		}
	})
	t.Run("forged dialback key", func(t *testing.T) {
		p := dialPeer(t, a, "b.test")
		p.starttls("b.test", "a.test", nil)
		// a.test asks b.test's real server, which never gave this key.
		p.Send("<db:result from='b.test' to='a.test'>" + s2s.Key([]byte("guess"), "a.test", "b.test", p.id) + "</db:result>")
		el := p.El()
		if el.Local != "result" || el.Get("type") != "invalid" {
			t.Fatalf("forged key: %s", el)
		}
		p.Send(msg("alice@b.test", "bob@a.test"))
		if ev, err := p.Next(); err == nil && ev.Kind != stream.Close {
			t.Fatalf("stream still open after a forged key: %v", ev.El)
		}
	})
	t.Run("relay", func(t *testing.T) {
		p := dialPeer(t, a, "evil.test")
		p.starttls("evil.test", "a.test", &evil)
		p.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
		if el := p.El(); el.Local != "success" {
			t.Fatalf("EXTERNAL: %s", el)
		}
		p.P.Restart()
		p.open("evil.test", "a.test")
		p.Send(msg("x@evil.test", "bob@b.test"))
		p.StreamError("host-unknown")
	})
}

// Strangers cannot hold more than MaxUnauthPerIP inbound connections; one
// that authenticates gives its slot back.
func TestUnauthenticatedCap(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", nil, func(c *s2s.Config) { c.MaxUnauthPerIP = 3 })
	var held []*peer
	for range 3 {
		held = append(held, dialPeer(t, a, "evil.test"))
	}
	c := xmpptest.Dial(t, a.d.S2SAddr(), false)
	c.Send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='a.test' version='1.0'>")
	if ev, err := c.Next(); err == nil {
		t.Fatalf("a fourth unauthenticated connection was served: %v", ev.Kind)
	}
	held[0].Raw.Close()
	// Its slot comes back once the server sees it gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := xmpptest.Dial(t, a.d.S2SAddr(), false)
		c.Send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='a.test' version='1.0'>")
		if ev, err := c.Next(); err == nil && ev.Kind == stream.Open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed connection's slot never came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A peer that is down for a while and comes back within the retry time
// gets what was queued for it.
func TestPeerBack(t *testing.T) {
	w := newWorld(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // b.test is down: connections are refused
	w.dns.SRV(t, "xmpp-server", "b.test", 0, 0, port, "xmpp.b.test")
	w.dns.Host(t, "xmpp.b.test", "127.0.0.1")
	a := w.start(t, "a.test", nil, func(c *s2s.Config) {
		c.RetryFor, c.RetryMin, c.RetryMax = time.Minute, 50*time.Millisecond, 200*time.Millisecond
	})
	alice := a.login(t, "alice")
	for i := range 3 {
		alice.Send(fmt.Sprintf("<message to='bob@b.test' type='chat' id='q%d'><body>queued %d</body></message>", i, i))
	}
	// Wait until the first attempts failed (the queue is held, not bounced).
	deadline := time.Now().Add(10 * time.Second)
	for !a.log.has("s2s: retrying") {
		if time.Now().After(deadline) {
			t.Fatal("no failed attempt logged")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := a.d.S2S().Queued(); n != 3 {
		t.Fatalf("%d stanzas queued while b.test is down, want 3", n)
	}
	// b.test comes up (with its accounts), then its record points at it.
	b := w.start(t, "b.test", nil, nil)
	bob := b.login(t, "bob")
	for i := range 3 {
		el := expect(t, bob, "a queued message", message("alice@a.test/r", "bob@b.test"))
		if got, want := el.ChildText(stream.NSClient, "body"), fmt.Sprintf("queued %d", i); got != want {
			t.Errorf("got %q, want %q (in order)", got, want)
		}
	}
}

// Many distinct domains that never answer: beyond MaxDomains the sender
// gets errors at once; every stanza is answered, none kept.
func TestManyDeadDomains(t *testing.T) {
	w := newWorld(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	const n, maxDomains = 60, 10
	for i := range n {
		d := fmt.Sprintf("dead%d.test", i)
		w.dns.SRV(t, "xmpp-server", d, 0, 0, port, "xmpp.dead.test")
	}
	w.dns.Host(t, "xmpp.dead.test", "127.0.0.1")
	a := w.start(t, "a.test", nil, func(c *s2s.Config) {
		c.MaxDomains, c.RetryFor, c.RetryMin, c.RetryMax = maxDomains, 2*time.Second, 50*time.Millisecond, 200*time.Millisecond
	})
	alice := a.login(t, "alice")
	go func() {
		for i := range n {
			fmt.Fprintf(alice.C, "<message to='bob@dead%d.test' type='chat' id='d%d'><body>x</body></message>", i, i)
		}
	}()
	count := map[string]int{}
	seen := map[string]bool{}
	for len(seen) < n {
		el := expect(t, alice, "a bounce", func(el *stream.Element) bool { return el.Local == "message" && el.Get("type") == "error" })
		if seen[el.Get("id")] {
			t.Fatalf("%s bounced twice", el.Get("id"))
		}
		seen[el.Get("id")] = true
		count[errCond(el)]++
	}
	if count["remote-server-timeout"] != maxDomains || count["resource-constraint"] != n-maxDomains {
		t.Errorf("bounces %v, want %d remote-server-timeout and %d resource-constraint", count, maxDomains, n-maxDomains)
	}
}

// TestIdleLinkMemory measures what an idle authenticated inbound link
// costs: heap, goroutine stacks and goroutines after a GC, for n links. The peers' ends
// (TLS and parser) live in this process too, so the figure is an upper
// bound for our side.
func TestIdleLinkMemory(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", nil, func(c *s2s.Config) { c.MaxUnauthPerIP = -1 })
	dir := t.TempDir()
	w.ca.Issue(t, filepath.Join(dir, "p.pem"), filepath.Join(dir, "p.key"), "peer.test")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "p.pem"), filepath.Join(dir, "p.key"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	heap := func() (uint64, int) {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc + m.StackInuse, runtime.NumGoroutine()
	}
	h0, g0 := heap()
	peers := make([]*peer, 0, n)
	for range n {
		p := dialPeer(t, a, "peer.test")
		p.starttls("peer.test", "a.test", &cert)
		p.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
		if el := p.El(); el.Local != "success" {
			t.Fatalf("EXTERNAL: %s", el)
		}
		p.P.Restart()
		p.open("peer.test", "a.test")
		peers = append(peers, p)
	}
	h1, g1 := heap()
	per := float64(int64(h1)-int64(h0)) / n / 1024
	t.Logf("%d idle inbound links: %.1f KiB heap and stacks per link (both ends), %.1f goroutines per link", n, per, float64(g1-g0)/n)
	if per > 96 {
		t.Errorf("%.1f KiB per idle link", per)
	}
	runtime.KeepAlive(peers)
}

// An authenticated peer that starts a stanza and never finishes it is cut
// off after StanzaTimeout, not after the (long) idle timeout.
func TestUnfinishedStanza(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", nil, func(c *s2s.Config) { c.StanzaTimeout = 300 * time.Millisecond })
	dir := t.TempDir()
	w.ca.Issue(t, filepath.Join(dir, "p.pem"), filepath.Join(dir, "p.key"), "peer.test")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "p.pem"), filepath.Join(dir, "p.key"))
	if err != nil {
		t.Fatal(err)
	}
	p := dialPeer(t, a, "peer.test")
	p.starttls("peer.test", "a.test", &cert)
	p.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
	if el := p.El(); el.Local != "success" {
		t.Fatalf("EXTERNAL: %s", el)
	}
	p.P.Restart()
	p.open("peer.test", "a.test")
	// Idle between stanzas is fine for longer than StanzaTimeout.
	time.Sleep(600 * time.Millisecond)
	p.Send("<message from='x@peer.test' to='bob@a.test' type='chat'><body>never end")
	start := time.Now()
	for {
		ev, err := p.Next()
		if err != nil || ev.Kind == stream.Close {
			break
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("unfinished stanza held the connection %v", d)
	}
}

// XEP-0368: a domain whose _xmpps-server record comes first is reached
// with TLS from the first byte (its STARTTLS port here is dead).
func TestDirectTLS(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", nil, nil)
	b := w.start(t, "b.test", nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	w.dns.Replace(t, s2s.SRVRecord("xmpp-server", "b.test", 20, 0, dead, "xmpp.b.test"))
	w.dns.Replace(t, s2s.SRVRecord("xmpps-server", "b.test", 10, 0, b.d.S2STLSAddr().(*net.TCPAddr).Port, "xmpp.b.test"))
	alice, bob := a.login(t, "alice"), b.login(t, "bob")
	alice.Send("<message to='bob@b.test' type='chat' id='d'><body>over direct TLS</body></message>")
	expect(t, bob, "alice's message", message("alice@a.test/r", "bob@b.test"))
}

// XEP-0478: a peer that accepts only small stanzas says so; a larger one
// goes back to its sender instead of costing the stream (and the stanzas
// behind it).
func TestPeerStanzaLimit(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", nil, nil)
	b := w.start(t, "b.test", nil, func(c *s2s.Config) { c.MaxStanzaBytes = 4096 })
	alice, bob := a.login(t, "alice"), b.login(t, "bob")
	alice.Send("<message to='bob@b.test' type='chat' id='big'><body>" + strings.Repeat("x", 10000) + "</body></message>")
	alice.Send("<message to='bob@b.test' type='chat' id='small'><body>small</body></message>")
	el := expect(t, alice, "the bounce", func(el *stream.Element) bool { return el.Get("id") == "big" })
	if errCond(el) != "policy-violation" {
		t.Errorf("too large: %s", errCond(el))
	}
	el = expect(t, bob, "the small message", message("alice@a.test/r", "bob@b.test"))
	if el.Get("id") != "small" {
		t.Errorf("got %s", el.Get("id"))
	}
}
