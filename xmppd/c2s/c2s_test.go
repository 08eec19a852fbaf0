package c2s_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	msasl "mellium.im/sasl"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const domain = "example.test"

func start(t *testing.T, mod func(*xmppd.Options)) *xmppd.Daemon {
	t.Helper()
	o := xmppd.Options{State: state.Dir(t.TempDir()), Domain: domain, C2S: "127.0.0.1:0", C2STLS: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&o)
	}
	d, err := xmppd.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	for _, u := range []string{"alice", "bob"} {
		if err := d.Store.CreateAccount(u, u+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// client is a deliberately small test client: it speaks exactly the bytes
// each test chooses, so tests can also speak them wrongly.
type client struct {
	t   *testing.T
	raw net.Conn
	c   net.Conn
	p   *stream.Parser
}

func dial(t *testing.T, addr net.Addr, direct bool) *client {
	t.Helper()
	raw, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	c := &client{t: t, raw: raw, c: raw}
	if direct {
		c.c = tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"}})
	}
	c.p = stream.NewParser(c.c, stream.Limits{MaxBytes: 1 << 24, MaxElements: 1 << 20, MaxDepth: 64})
	return c
}

func (c *client) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send %.60q: %v", s, err)
	}
}

func (c *client) next() (stream.Event, error) {
	c.raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c.p.Next()
}

func (c *client) el() *stream.Element {
	c.t.Helper()
	ev, err := c.next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if ev.Kind != stream.Stanza {
		c.t.Fatalf("got event %v, want an element", ev.Kind)
	}
	return ev.El
}

func (c *client) open() *stream.Element {
	c.t.Helper()
	c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "' version='1.0'>")
	ev, err := c.next()
	if err != nil || ev.Kind != stream.Open {
		c.t.Fatalf("stream header: %v %v", ev.Kind, err)
	}
	f := c.el()
	if f.Local != "features" {
		c.t.Fatalf("want features, got %s", f)
	}
	return f
}

// streamError reads until the stream error and the end of the connection.
func (c *client) streamError(want string) {
	c.t.Helper()
	for {
		ev, err := c.next()
		if err != nil {
			c.t.Fatalf("connection ended without stream error %s: %v", want, err)
		}
		if ev.Kind == stream.Stanza && ev.El.Local == "error" && ev.El.Space == stream.NSStream {
			if got := ev.El.FirstChild(); got == nil || got.Local != want || got.Space != stream.NSStreamE {
				c.t.Fatalf("stream error %s, want %s", ev.El, want)
			}
			break
		}
	}
	ev, err := c.next()
	if err == nil && ev.Kind != stream.Close {
		c.t.Fatalf("after the stream error: %v", ev.El)
	}
	c.raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		c.t.Fatalf("connection still open after the stream error: %v", err)
	}
}

func (c *client) auth(mech msasl.Mechanism, user, pw string) *stream.Element {
	c.t.Helper()
	opts := []msasl.Option{msasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(pw), nil })}
	if tc, ok := c.c.(*tls.Conn); ok {
		opts = append(opts, msasl.TLSState(tc.ConnectionState()), msasl.RemoteMechanisms(mech.Name))
	}
	cl := msasl.NewClient(mech, opts...)
	_, resp, err := cl.Step(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(fmt.Sprintf("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>", mech.Name, base64.StdEncoding.EncodeToString(resp)))
	for {
		el := c.el()
		data, _ := base64.StdEncoding.DecodeString(el.Text())
		switch el.Local {
		case "challenge":
			if _, resp, err = cl.Step(data); err != nil {
				c.t.Fatal(err)
			}
			c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString(resp) + "</response>")
		case "success":
			if _, _, err := cl.Step(data); err != nil {
				c.t.Fatalf("server signature rejected: %v", err)
			}
			c.p.Restart()
			return el
		default:
			return el
		}
	}
}

func (c *client) bind(res string) string {
	c.t.Helper()
	r := ""
	if res != "" {
		r = "<resource>" + res + "</resource>"
	}
	c.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + r + "</bind></iq>")
	el := c.el()
	if el.Get("type") != "result" {
		c.t.Fatalf("bind failed: %s", el)
	}
	return el.FirstChild().ChildText("", "jid")
}

func login(t *testing.T, d *xmppd.Daemon, user, res string) *client {
	t.Helper()
	c := dial(t, d.C2STLSAddr, true)
	c.open()
	if el := c.auth(msasl.ScramSha256, user, user+"-pw"); el.Local != "success" {
		t.Fatalf("auth: %s", el)
	}
	c.open()
	c.bind(res)
	return c
}

func TestStarttlsScramBind(t *testing.T) {
	d := start(t, nil)
	for _, mech := range []msasl.Mechanism{msasl.ScramSha256, msasl.ScramSha1, msasl.ScramSha256Plus, msasl.ScramSha1Plus} {
		t.Run(mech.Name, func(t *testing.T) {
			c := dial(t, d.C2SAddr, false)
			f := c.open()
			if f.Child("urn:ietf:params:xml:ns:xmpp-tls", "starttls").Child("", "required") == nil {
				t.Fatalf("STARTTLS not required: %s", f)
			}
			c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
			if el := c.el(); el.Local != "proceed" {
				t.Fatalf("starttls: %s", el)
			}
			c.c = tls.Client(c.raw, &tls.Config{InsecureSkipVerify: true})
			c.p = stream.NewParser(c.c, stream.PostAuthLimits)
			f = c.open()
			if !strings.Contains(f.String(), ">"+mech.Name+"<") {
				t.Fatalf("%s not offered: %s", mech.Name, f)
			}
			if strings.Contains(f.String(), ">PLAIN<") {
				t.Fatal("PLAIN offered")
			}
			if el := c.auth(mech, "alice", "alice-pw"); el.Local != "success" {
				t.Fatalf("auth: %s", el)
			}
			c.open()
			if got := c.bind("laptop"); got != "alice@"+domain+"/laptop" {
				t.Fatalf("bound %q", got)
			}
		})
	}
}

func TestWrongPasswordAndBackoff(t *testing.T) {
	d := start(t, nil)
	c := dial(t, d.C2STLSAddr, true)
	c.open()
	for i := 1; i <= 4; i++ {
		began := time.Now()
		el := c.auth(msasl.ScramSha256, "alice", "wrong")
		if el.Local != "failure" || el.Child("", "not-authorized") == nil {
			t.Fatalf("attempt %d: %s", i, el)
		}
		if i == 4 && time.Since(began) < time.Second {
			t.Fatalf("fourth failure from one address answered without back-off")
		}
	}
	// An unknown user fails the same way.
	c2 := dial(t, d.C2STLSAddr, true)
	c2.open()
	if el := c2.auth(msasl.ScramSha1, "nobody", "x"); el.Child("", "not-authorized") == nil {
		t.Fatalf("unknown user: %s", el)
	}
}

func TestStreamErrorsBeforeAuth(t *testing.T) {
	d := start(t, nil)
	cases := []struct{ name, send, cond string }{
		{"stanza before auth", "<message to='bob@" + domain + "'><body>hi</body></message>", "not-authorized"},
		{"unknown nonza", "<foo xmlns='urn:example'/>", "policy-violation"},
		{"comment", "<!-- x -->", "restricted-xml"},
		{"too big", "<message>" + strings.Repeat("a", 9000) + "</message>", "policy-violation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, d.C2STLSAddr, true)
			c.open()
			c.send(tc.send)
			c.streamError(tc.cond)
		})
	}
	t.Run("wrong host", func(t *testing.T) {
		c := dial(t, d.C2STLSAddr, true)
		c.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='other.test' version='1.0'>")
		if ev, err := c.next(); err != nil || ev.Kind != stream.Open {
			t.Fatalf("no header before the error: %v", err)
		}
		c.streamError("host-unknown")
	})
	t.Run("wrong namespace", func(t *testing.T) {
		c := dial(t, d.C2STLSAddr, true)
		c.send("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "' version='1.0'>")
		c.next()
		c.streamError("invalid-namespace")
	})
}

func TestStarttlsInjectionRefused(t *testing.T) {
	d := start(t, nil)
	c := dial(t, d.C2SAddr, false)
	c.open()
	c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message to='bob@" + domain + "'/>")
	c.raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, _ := io.ReadAll(c.raw)
	if strings.Count(string(buf), "<") > 1 {
		t.Fatalf("server went on after injected plaintext: %q", buf)
	}
}

func TestAuthTimeout(t *testing.T) {
	d := start(t, func(o *xmppd.Options) { o.AuthTimout = 300 * time.Millisecond })
	c := dial(t, d.C2STLSAddr, true)
	c.open()
	c.streamError("connection-timeout")
}

func TestResourceConflictAndLimit(t *testing.T) {
	d := start(t, nil)
	first := login(t, d, "alice", "phone")
	login(t, d, "alice", "phone")
	first.streamError("conflict")
	for i := 0; i < 9; i++ {
		login(t, d, "alice", fmt.Sprintf("r%d", i))
	}
	c := dial(t, d.C2STLSAddr, true)
	c.open()
	c.auth(msasl.ScramSha256, "alice", "alice-pw")
	c.open()
	c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>eleventh</resource></bind></iq>")
	el := c.el()
	if el.Get("type") != "error" || el.Child("", "error").Child(stream.NSStanzaE, "resource-constraint") == nil {
		t.Fatalf("eleventh resource: %s", el)
	}
}

func TestInvalidFrom(t *testing.T) {
	d := start(t, nil)
	c := login(t, d, "alice", "a")
	c.send("<message from='bob@" + domain + "/x' to='bob@" + domain + "'><body>spoof</body></message>")
	c.streamError("invalid-from")
}

func TestFromIsStamped(t *testing.T) {
	d := start(t, nil)
	a := login(t, d, "alice", "a")
	b := login(t, d, "bob", "b")
	a.send("<message from='alice@" + domain + "' to='bob@" + domain + "/b' type='chat'><body>hi</body></message>")
	el := b.el()
	if el.Get("from") != "alice@"+domain+"/a" || el.ChildText("", "body") != "hi" {
		t.Fatalf("bob got %s", el)
	}
}

// A client that stops reading is disconnected once its queue is full; the
// sender is never blocked by it.
func TestSlowReaderDoesNotBlockSender(t *testing.T) {
	d := start(t, func(o *xmppd.Options) { o.NoShaping = true })
	login(t, d, "alice", "stalled") // never reads again
	b := login(t, d, "bob", "b")
	body := strings.Repeat("x", 100<<10)
	// Bob reads everything (error bounces included) and reports his ping.
	pong := make(chan bool, 1)
	go func() {
		for {
			b.raw.SetReadDeadline(time.Now().Add(30 * time.Second))
			ev, err := b.p.Next()
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
			b.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := fmt.Fprintf(b.c, "<message to='alice@%s/stalled' type='chat'><body>%s</body></message>", domain, body); err != nil {
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
	b.send("<iq type='get' id='p' to='bob@" + domain + "/b'><ping xmlns='urn:xmpp:ping'/></iq>")
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
	d := start(t, nil)
	c := login(t, d, "alice", "a")
	c.send("<foo xmlns='jabber:client'/>")
	c.streamError("unsupported-stanza-type")
}

func TestShutdownSendsSystemShutdown(t *testing.T) {
	d := start(t, nil)
	c := login(t, d, "alice", "a")
	go d.Shutdown(context.Background())
	c.streamError("system-shutdown")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
