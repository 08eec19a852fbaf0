// Package xmpptest runs an in-process xmppd and speaks to it with a small,
// deliberately literal client, for the tests of the core and of modules.
package xmpptest

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

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/client"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Domain is the test servers' Domain.
const Domain = "example.test"

// Start runs an in-process server with accounts alice and bob (passwords
// alice-pw, bob-pw); mod adjusts its options.
func Start(t testing.TB, mod func(*xmppd.Options)) *xmppd.Daemon {
	t.Helper()
	o := xmppd.Options{State: state.Dir(t.TempDir()), Domain: Domain, C2S: "127.0.0.1:0", C2STLS: "127.0.0.1:0",
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

// Client is a deliberately small test client: it speaks exactly the bytes
// each test chooses, so tests can also speak them wrongly.
type Client struct {
	T   testing.TB
	Raw net.Conn
	C   net.Conn // Raw, or TLS over it
	P   *stream.Parser
}

// Dial connects to addr, with TLS from the first byte if direct.
func Dial(t testing.TB, addr net.Addr, direct bool) *Client {
	t.Helper()
	raw, err := net.Dial(addr.Network(), addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	c := &Client{T: t, Raw: raw, C: raw}
	if direct {
		c.C = tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"}})
	}
	c.P = stream.NewParser(c.C, stream.Limits{MaxBytes: 1 << 24, MaxElements: 1 << 20, MaxDepth: 64})
	return c
}

// Send writes s.
func (c *Client) Send(s string) {
	c.T.Helper()
	c.C.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.C, s); err != nil {
		c.T.Fatalf("send %.60q: %v", s, err)
	}
}

// Next reads the next event (10 s timeout).
func (c *Client) Next() (stream.Event, error) {
	c.Raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c.P.Next()
}

// El reads the next element and fails the test on anything else.
func (c *Client) El() *stream.Element {
	c.T.Helper()
	ev, err := c.Next()
	if err != nil {
		c.T.Fatalf("read: %v", err)
	}
	if ev.Kind != stream.Stanza {
		c.T.Fatalf("got event %v, want an element", ev.Kind)
	}
	return ev.El
}

// Open sends a stream header and returns the features.
func (c *Client) Open() *stream.Element {
	c.T.Helper()
	c.Send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + Domain + "' version='1.0'>")
	ev, err := c.Next()
	if err != nil || ev.Kind != stream.Open {
		c.T.Fatalf("stream header: %v %v", ev.Kind, err)
	}
	f := c.El()
	if f.Local != "features" {
		c.T.Fatalf("want features, got %s", f)
	}
	return f
}

// streamError reads until the stream error and the end of the connection.
// StreamError reads until stream error want and checks the connection closes.
func (c *Client) StreamError(want string) {
	c.T.Helper()
	for {
		ev, err := c.Next()
		if err != nil {
			c.T.Fatalf("connection ended without stream error %s: %v", want, err)
		}
		if ev.Kind == stream.Stanza && ev.El.Local == "error" && ev.El.Space == stream.NSStream {
			if got := ev.El.FirstChild(); got == nil || got.Local != want || got.Space != stream.NSStreamE {
				c.T.Fatalf("stream error %s, want %s", ev.El, want)
			}
			break
		}
	}
	ev, err := c.Next()
	if err == nil && ev.Kind != stream.Close {
		c.T.Fatalf("after the stream error: %v", ev.El)
	}
	c.Raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.C.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		c.T.Fatalf("connection still open after the stream error: %v", err)
	}
}

// Auth runs SASL with mech (e.g. "SCRAM-SHA-256"; a -PLUS one binds to
// the TLS connection with tls-exporter) and returns <success/> or
// <failure/>. The SCRAM maths are xmppd/client's, the one login client.
func (c *Client) Auth(mech, user, pw string) *stream.Element {
	c.T.Helper()
	cl, err := client.NewScram(mech, user, pw)
	if err != nil {
		c.T.Fatal(err)
	}
	if strings.HasSuffix(mech, "-PLUS") {
		tc, ok := c.C.(*tls.Conn)
		if !ok {
			c.T.Fatalf("%s without TLS", mech)
		}
		cb, err := client.Exporter(tc.ConnectionState())
		if err != nil {
			c.T.Fatal(err)
		}
		cl.Bind("tls-exporter", cb)
	}
	c.Send(fmt.Sprintf("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>", mech, base64.StdEncoding.EncodeToString(cl.First())))
	for {
		el := c.El()
		data, _ := base64.StdEncoding.DecodeString(el.Text())
		switch el.Local {
		case "challenge":
			resp, err := cl.Final(data)
			if err != nil {
				c.T.Fatal(err)
			}
			c.Send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + base64.StdEncoding.EncodeToString(resp) + "</response>")
		case "success":
			if err := cl.Verify(data); err != nil {
				c.T.Fatalf("server signature rejected: %v", err)
			}
			c.P.Restart()
			return el
		default:
			return el
		}
	}
}

// Bind binds res ("" lets the server choose) and returns the full JID.
func (c *Client) Bind(res string) string {
	c.T.Helper()
	r := ""
	if res != "" {
		r = "<resource>" + res + "</resource>"
	}
	c.Send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + r + "</bind></iq>")
	el := c.El()
	if el.Get("type") != "result" {
		c.T.Fatalf("bind failed: %s", el)
	}
	return el.FirstChild().ChildText("", "jid")
}

// Login connects with direct TLS as user (password user+"-pw") and binds res.
func Login(t testing.TB, d *xmppd.Daemon, user, res string) *Client {
	t.Helper()
	c := Dial(t, d.C2STLSAddr, true)
	c.Open()
	if el := c.Auth("SCRAM-SHA-256", user, user+"-pw"); el.Local != "success" {
		t.Fatalf("auth: %s", el)
	}
	c.Open()
	c.Bind(res)
	return c
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
