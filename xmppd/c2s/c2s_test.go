package c2s_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/c2s"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

func TestStarttlsScramBind(t *testing.T) {
	d := xmpptest.Start(t, nil)
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"} {
		t.Run(mech, func(t *testing.T) {
			c := xmpptest.Dial(t, d.C2SAddr, false)
			f := c.Open()
			if f.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls").Child("", "required") == nil {
				t.Fatalf("STARTTLS not required: %s", f)
			}
			c.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
			if el := c.El(); el.Local != "proceed" {
				t.Fatalf("starttls: %s", el)
			}
			c.C = tls.Client(c.Raw, &tls.Config{InsecureSkipVerify: true})
			c.P = stream.NewParser(c.C, stream.PostAuthLimits)
			f = c.Open()
			if !strings.Contains(f.String(), ">"+mech+"<") {
				t.Fatalf("%s not offered: %s", mech, f)
			}
			if strings.Contains(f.String(), ">PLAIN<") {
				t.Fatal("PLAIN offered")
			}
			if el := c.Auth(mech, "alice", "alice-pw"); el.Local != "success" {
				t.Fatalf("auth: %s", el)
			}
			c.Open()
			if got := c.Bind("laptop"); got != "alice@"+xmpptest.Domain+"/laptop" {
				t.Fatalf("bound %q", got)
			}
		})
	}
}

func TestWrongPasswordAndBackoff(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	for i := 1; i <= 4; i++ {
		began := time.Now()
		el := c.Auth("SCRAM-SHA-256", "alice", "wrong")
		if el.Local != "failure" || el.Child("", "not-authorized") == nil {
			t.Fatalf("attempt %d: %s", i, el)
		}
		if i == 4 && time.Since(began) < time.Second {
			t.Fatalf("fourth failure from one address answered without back-off")
		}
	}
	// An unknown user fails the same way.
	c2 := xmpptest.Dial(t, d.C2STLSAddr, true)
	c2.Open()
	if el := c2.Auth("SCRAM-SHA-1", "nobody", "x"); el.Child("", "not-authorized") == nil {
		t.Fatalf("unknown user: %s", el)
	}
}

func TestStreamErrorsBeforeAuth(t *testing.T) {
	d := xmpptest.Start(t, nil)
	cases := []struct{ name, send, cond string }{
		{"stanza before auth", "<message to='bob@" + xmpptest.Domain + "'><body>hi</body></message>", "not-authorized"},
		{"unknown nonza", "<foo xmlns='urn:example'/>", "policy-violation"},
		{"comment", "<!-- x -->", "restricted-xml"},
		{"too big", "<message>" + strings.Repeat("a", 9000) + "</message>", "policy-violation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := xmpptest.Dial(t, d.C2STLSAddr, true)
			c.Open()
			c.Send(tc.send)
			c.StreamError(tc.cond)
		})
	}
	t.Run("wrong host", func(t *testing.T) {
		c := xmpptest.Dial(t, d.C2STLSAddr, true)
		c.Send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='other.test' version='1.0'>")
		if ev, err := c.Next(); err != nil || ev.Kind != stream.Open {
			t.Fatalf("no header before the error: %v", err)
		}
		c.StreamError("host-unknown")
	})
	t.Run("wrong namespace", func(t *testing.T) {
		c := xmpptest.Dial(t, d.C2STLSAddr, true)
		c.Send("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='" + xmpptest.Domain + "' version='1.0'>")
		c.Next()
		c.StreamError("invalid-namespace")
	})
}

func TestStarttlsInjectionRefused(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2SAddr, false)
	c.Open()
	c.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message to='bob@" + xmpptest.Domain + "'/>")
	c.Raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, _ := io.ReadAll(c.Raw)
	if strings.Count(string(buf), "<") > 1 {
		t.Fatalf("server went on after injected plaintext: %q", buf)
	}
}

func TestAuthTimeout(t *testing.T) {
	d := xmpptest.Start(t, func(o *xmppd.Options) { o.AuthTimout = 300 * time.Millisecond })
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	c.StreamError("connection-timeout")
}

func TestResourceConflictAndLimit(t *testing.T) {
	d := xmpptest.Start(t, nil)
	first := xmpptest.Login(t, d, "alice", "phone")
	xmpptest.Login(t, d, "alice", "phone")
	first.StreamError("conflict")
	for i := 0; i < 9; i++ {
		xmpptest.Login(t, d, "alice", fmt.Sprintf("r%d", i))
	}
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	c.Auth("SCRAM-SHA-256", "alice", "alice-pw")
	c.Open()
	c.Send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>eleventh</resource></bind></iq>")
	el := c.El()
	if el.Get("type") != "error" || el.Child("", "error").Child(stream.NSStanzaE, "resource-constraint") == nil {
		t.Fatalf("eleventh resource: %s", el)
	}
}

func TestInvalidFrom(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Login(t, d, "alice", "a")
	c.Send("<message from='bob@" + xmpptest.Domain + "/x' to='bob@" + xmpptest.Domain + "'><body>spoof</body></message>")
	c.StreamError("invalid-from")
}

func TestFromIsStamped(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := xmpptest.Login(t, d, "alice", "a")
	b := xmpptest.Login(t, d, "bob", "b")
	a.Send("<message from='alice@" + xmpptest.Domain + "' to='bob@" + xmpptest.Domain + "/b' type='chat'><body>hi</body></message>")
	el := b.El()
	if el.Get("from") != "alice@"+xmpptest.Domain+"/a" || el.ChildText("", "body") != "hi" {
		t.Fatalf("bob got %s", el)
	}
}

// A stale resource of the sender's own account (Converse after resuming on
// a page reload) is corrected, not refused: the message arrives from the
// session's real full JID.
func TestOwnOtherResourceIsStamped(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := xmpptest.Login(t, d, "alice", "a")
	b := xmpptest.Login(t, d, "bob", "b")
	a.Send("<message from='alice@" + xmpptest.Domain + "/before-reload' to='bob@" + xmpptest.Domain + "/b' type='chat'><body>after reload</body></message>")
	el := b.El()
	if el.Get("from") != "alice@"+xmpptest.Domain+"/a" || el.ChildText("", "body") != "after reload" {
		t.Fatalf("bob got %s", el)
	}
}

// A client that stops reading is disconnected once its queue is full; the
// sender is never blocked by it.
func TestSlowReaderDoesNotBlockSender(t *testing.T) {
	d := xmpptest.Start(t, func(o *xmppd.Options) { o.NoShaping = true })
	xmpptest.Login(t, d, "alice", "stalled") // never reads again
	b := xmpptest.Login(t, d, "bob", "b")
	body := strings.Repeat("x", 100<<10)
	// Bob reads everything (error bounces included) and reports his ping.
	pong := make(chan bool, 1)
	go func() {
		for {
			b.Raw.SetReadDeadline(time.Now().Add(30 * time.Second))
			ev, err := b.P.Next()
			if err != nil {
				return
			}
			if ev.El != nil && ev.El.Get("id") == "p" {
				pong <- true
			}
		}
	}()
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 200; i++ {
			b.C.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprintf(b.C, "<message to='alice@%s/stalled' type='chat'><body>%s</body></message>", xmpptest.Domain, body); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("sender blocked by a stalled recipient: %v", err)
	}
	// The sender's own session still works.
	b.Send("<iq type='get' id='p' to='bob@" + xmpptest.Domain + "/b'><ping xmlns='urn:xmpp:ping'/></iq>")
	select {
	case <-pong:
	case <-time.After(20 * time.Second):
		t.Fatal("sender's session stopped answering")
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.Server.Router.Session("alice", "stalled") != nil {
		if time.Now().After(deadline) {
			t.Fatal("stalled session never closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestUnsupportedStanzaType(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Login(t, d, "alice", "a")
	c.Send("<foo xmlns='jabber:client'/>")
	c.StreamError("unsupported-stanza-type")
}

func TestShutdownSendsSystemShutdown(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Login(t, d, "alice", "a")
	go d.Shutdown(context.Background())
	c.StreamError("system-shutdown")
}

// Idle bound sessions are parked with the poller: they hold no goroutine,
// and still receive and send at once when something happens.
func TestIdleSessionsHoldNoGoroutine(t *testing.T) {
	d := xmpptest.Start(t, nil)
	var clients []*xmpptest.Client
	for i := 0; i < 5; i++ {
		clients = append(clients, xmpptest.Login(t, d, "bob", fmt.Sprintf("r%d", i)))
	}
	time.Sleep(200 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := 0; i < 40; i++ {
		d.Store.CreateAccount(fmt.Sprintf("u%d", i), fmt.Sprintf("u%d-pw", i), false)
		clients = append(clients, xmpptest.Login(t, d, fmt.Sprintf("u%d", i), "idle"))
	}
	time.Sleep(200 * time.Millisecond)
	if grown := runtime.NumGoroutine() - before; grown > 5 {
		t.Fatalf("40 idle sessions hold %d goroutines", grown)
	}
	// A parked session wakes for its next stanza.
	a := clients[len(clients)-1]
	a.Send("<message to='bob@" + xmpptest.Domain + "/r0' type='chat'><body>wake</body></message>")
	if el := clients[0].El(); el.ChildText("", "body") != "wake" {
		t.Fatalf("got %s", el)
	}
}

// One address may hold only a few connections that have not logged in; a
// logged-in member is not counted, and a freed slot can be used again.
func TestUnauthenticatedConnectionCap(t *testing.T) {
	d := xmpptest.Start(t, nil)
	var held []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", d.C2SAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	time.Sleep(100 * time.Millisecond)
	over, err := net.Dial("tcp", d.C2SAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := over.Read(make([]byte, 1)); err == nil || isTimeoutErr(err) {
		t.Fatalf("21st unauthenticated connection was served (n=%d, err=%v)", n, err)
	}
	held[0].Close()
	time.Sleep(100 * time.Millisecond)
	// Logging in works again (and does not count once done).
	xmpptest.Login(t, d, "alice", "a")
}

// Everything tor forwards arrives from 127.0.0.1. Those connections fill
// a bucket of their own, larger than one address's (20 silent strangers
// locked out every onion user): a crowd on the onion service can neither
// use up the loopback address's slots nor be given them.
func TestOnionConnectionsHaveTheirOwnBucket(t *testing.T) {
	const onionCap = 30 // the default is 200; fewer keep the test quick
	if def := c2s.DefaultConfig(nil, nil, nil); def.MaxUnauthOnion < 200 || def.MaxUnauthPerIP >= def.MaxUnauthOnion {
		t.Fatalf("default onion cap %d (per address %d): want 200 or more", def.MaxUnauthOnion, def.MaxUnauthPerIP)
	}
	d := xmpptest.Start(t, func(o *xmppd.Options) {
		o.C2SOnion = "127.0.0.1:0"
		o.C2STune = func(c *c2s.Config) { c.MaxUnauthOnion = onionCap }
	})
	if d.C2SOnionAddr == nil {
		t.Fatal("no onion listener")
	}
	// A real c2s listener: STARTTLS offered and required, nothing else.
	f := xmpptest.Dial(t, d.C2SOnionAddr, false).Open()
	if st := f.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls"); st == nil || st.Child("urn:ietf:params:xml:ns:xmpp-tls", "required") == nil {
		t.Fatalf("onion listener features %s: want STARTTLS required", f)
	}
	if f.Child("urn:ietf:params:xml:ns:xmpp-sasl", "mechanisms") != nil {
		t.Fatalf("onion listener offers SASL before TLS: %s", f)
	}
	// More strangers than one address may have, silent after their
	// stream header: all served (the features prove each was counted).
	for held := 1; held < onionCap; held++ {
		xmpptest.Dial(t, d.C2SOnionAddr, false).Open()
	}
	over, err := net.Dial("tcp", d.C2SOnionAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := over.Read(make([]byte, 1)); err == nil || isTimeoutErr(err) {
		t.Fatalf("connection %d over the onion cap was served (n=%d, err=%v)", onionCap+1, n, err)
	}
	// The ordinary listeners, same source address, are unaffected.
	xmpptest.Login(t, d, "alice", "a")
	xmpptest.Dial(t, d.C2SAddr, false).Open()
}

// onionLogin opens a stream over the onion listener and upgrades it to TLS.
func onionTLS(t *testing.T, d *xmppd.Daemon) *xmpptest.Client {
	t.Helper()
	c := xmpptest.Dial(t, d.C2SOnionAddr, false)
	c.Open()
	c.Send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if el := c.El(); el.Local != "proceed" {
		t.Fatalf("starttls: %s", el)
	}
	c.C = tls.Client(c.Raw, &tls.Config{InsecureSkipVerify: true})
	c.P = stream.NewParser(c.C, stream.PostAuthLimits)
	c.Open()
	return c
}

// A stranger who connects over Tor and says nothing gives its slot back
// after OnionIdleTimeout, well before the auth timeout; one that keeps
// talking logs in.
func TestOnionIdleStrangerDropped(t *testing.T) {
	const idle = 400 * time.Millisecond
	d := xmpptest.Start(t, func(o *xmppd.Options) {
		o.C2SOnion = "127.0.0.1:0"
		o.C2STune = func(c *c2s.Config) { c.OnionIdleTimeout = idle }
	})
	began := time.Now()
	c := xmpptest.Dial(t, d.C2SOnionAddr, false)
	c.Open()
	c.StreamError("connection-timeout")
	if took := time.Since(began); took < idle || took > 20*time.Second {
		t.Fatalf("silent onion connection closed after %v, want about %v", took, idle)
	}
	// Each step of a login renews the idle bound.
	c = onionTLS(t, d)
	time.Sleep(idle / 2)
	if el := c.Auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
		t.Fatalf("auth over onion: %s", el)
	}
	c.Open()
	c.Bind("tor")
	// Bound: no idle bound any more.
	time.Sleep(2 * idle)
	c.Send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := c.El(); el.Get("id") != "p" {
		t.Fatalf("bound onion session: %s", el)
	}
	// The ordinary listeners keep the full auth timeout.
	o := xmpptest.Dial(t, d.C2STLSAddr, true)
	o.Open()
	o.Raw.SetReadDeadline(time.Now().Add(2 * idle))
	if _, err := o.P.Next(); !isTimeoutErr(err) {
		t.Fatalf("an ordinary pre-auth connection was closed after %v: %v", 2*idle, err)
	}
}

// Over Tor every connection has tor's address, so SASL failures there are
// counted per account name: guesses at one name slow down, while another
// member (and the right password for the guessed name) are not held up.
func TestOnionBackoffPerName(t *testing.T) {
	d := xmpptest.Start(t, func(o *xmppd.Options) { o.C2SOnion = "127.0.0.1:0" })
	c := onionTLS(t, d)
	for i := 1; i <= 4; i++ {
		began := time.Now()
		if el := c.Auth("SCRAM-SHA-256", "alice", "wrong"); el.Child("", "not-authorized") == nil {
			t.Fatalf("attempt %d: %s", i, el)
		}
		if took := time.Since(began); i == 4 && took < time.Second {
			t.Fatalf("fourth wrong guess at one name over Tor answered in %v: no back-off", took)
		}
	}
	if n := d.C2S.FailureCount(c2s.OnionBucket + "\x00alice"); n != 4 {
		t.Fatalf("failures for alice over Tor: %d, want 4", n)
	}
	if n := d.C2S.FailureCount(c2s.OnionBucket); n != 0 {
		t.Fatalf("failures counted for all of Tor: %d", n)
	}
	// Another member's typo over Tor: no delay.
	b := onionTLS(t, d)
	began := time.Now()
	if el := b.Auth("SCRAM-SHA-256", "bob", "typo"); el.Child("", "not-authorized") == nil {
		t.Fatalf("bob's typo: %s", el)
	}
	if took := time.Since(began); took > 900*time.Millisecond {
		t.Fatalf("bob's first typo over Tor waited %v for alice's guesser", took)
	}
	// alice herself, right password, over Tor: not locked out, not delayed.
	a := onionTLS(t, d)
	began = time.Now()
	if el := a.Auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
		t.Fatalf("alice's right password over Tor during the guessing: %s", el)
	}
	if took := time.Since(began); took > 900*time.Millisecond {
		t.Fatalf("alice's login over Tor took %v", took)
	}
	// The loopback address's own count is untouched.
	if n := d.C2S.FailureCount("127.0.0.1"); n != 0 {
		t.Fatalf("onion failures counted for 127.0.0.1: %d", n)
	}
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// On the box tor forwards to a unix socket in the state directory.
func TestOnionListenerOnUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "onion.sock")
	d := xmpptest.Start(t, func(o *xmppd.Options) { o.C2SOnion = "unix:" + path })
	if d.C2SOnionAddr == nil || d.C2SOnionAddr.Network() != "unix" {
		t.Fatalf("onion listener: %v", d.C2SOnionAddr)
	}
	f := xmpptest.Dial(t, d.C2SOnionAddr, false).Open()
	if f.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls") == nil {
		t.Fatalf("features over the unix socket: %s", f)
	}
}

// One TLS configuration per listener: a client's second connection resumes
// the TLS session of its first. With a configuration per connection each
// had its own session-ticket keys, so no ticket was ever accepted (and
// every idle session carried 1.2 KiB of configuration).
func TestTLSSessionResumes(t *testing.T) {
	d := xmpptest.Start(t, nil)
	if d.C2STLSAddr == nil {
		t.Fatal("no direct TLS listener")
	}
	cfg := &tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	for i := range 2 {
		c, err := tls.Dial("tcp", d.C2STLSAddr.String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		// TLS 1.3 tickets come after the handshake: read the server's
		// stream header so the client takes the ticket in.
		fmt.Fprintf(c, "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>", xmpptest.Domain)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 256)); err != nil {
			t.Fatal(err)
		}
		resumed := c.ConnectionState().DidResume
		c.Close()
		if i == 1 && !resumed {
			t.Fatal("the second connection did not resume the first one's TLS session")
		}
	}
}
