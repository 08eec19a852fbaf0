package ws_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/client"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/stream"
	"github.com/hearthchat/hearth/xmppd/ws"
)

const (
	nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsSM   = "urn:xmpp:sm:3"
)

// start runs a server with its web listener (plain HTTP, and HTTPS if tls).
func start(t *testing.T, mod func(*xmppd.Options)) *xmppd.Daemon {
	return xmpptest.Start(t, func(o *xmppd.Options) {
		o.Web, o.Dev = "127.0.0.1:0", true
		if mod != nil {
			mod(o)
		}
	})
}

func wsURL(d *xmppd.Daemon) string { return "ws://" + d.Web.Addr.String() + ws.Path }

// wsc is a literal test client: it sends exactly the messages a test
// chooses.
type wsc struct {
	t   *testing.T
	c   *websocket.Conn
	tls *tls.ConnectionState
	raw net.Conn
}

func dial(t *testing.T, url string, hdr http.Header) *wsc {
	t.Helper()
	x := &wsc{t: t}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			x.raw = c
			return c, err
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{"xmpp"}, HTTPHeader: hdr, HTTPClient: &http.Client{Transport: tr},
	})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if c.Subprotocol() != "xmpp" {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	c.SetReadLimit(1 << 22)
	x.c, x.tls = c, resp.TLS
	t.Cleanup(func() { c.CloseNow() })
	return x
}

func (x *wsc) send(s string) {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := x.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		x.t.Fatalf("send: %v", err)
	}
}

// next returns the next message as an element, or the read error.
func (x *wsc) next() (*stream.Element, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	typ, b, err := x.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, fmt.Errorf("message type %v", typ)
	}
	el, err := stream.ParseElement(b)
	if err != nil {
		return nil, fmt.Errorf("message %q is not one element: %v", b, err)
	}
	return el, nil
}

func (x *wsc) el() *stream.Element {
	x.t.Helper()
	el, err := x.next()
	if err != nil {
		x.t.Fatal(err)
	}
	return el
}

// open sends <open/> and returns the features.
func (x *wsc) open(to string) *stream.Element {
	x.t.Helper()
	x.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='" + to + "' version='1.0'/>")
	if el := x.el(); el.Space != ws.NSFraming || el.Local != "open" || el.Get("from") != xmpptest.Domain || el.Get("id") == "" {
		x.t.Fatalf("want <open/>, got %s", el)
	}
	f := x.el()
	if f.Space != stream.NSStream || f.Local != "features" {
		x.t.Fatalf("want features, got %s", f)
	}
	return f
}

// streamError expects stream error cond, then <close/>, then the end.
func (x *wsc) streamError(cond string) {
	x.t.Helper()
	for {
		el, err := x.next()
		if err != nil {
			x.t.Fatalf("ended without stream error %s: %v", cond, err)
		}
		if el.Space == stream.NSStream && el.Local == "error" {
			if got := el.FirstChild(); got == nil || got.Local != cond {
				x.t.Fatalf("stream error %s, want %s", el, cond)
			}
			break
		}
	}
	if el, err := x.next(); err != nil || el.Local != "close" || el.Space != ws.NSFraming {
		x.t.Fatalf("after the stream error: %v %v", el, err)
	}
	x.closed()
}

// closed expects the connection to end.
func (x *wsc) closed() {
	x.t.Helper()
	for {
		if _, err := x.next(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				x.t.Fatal("connection still open")
			}
			return
		}
	}
}

func (x *wsc) auth(mech, user, pw string) *stream.Element {
	x.t.Helper()
	cl, err := client.NewScram(mech, user, pw)
	if err != nil {
		x.t.Fatal(err)
	}
	if strings.HasSuffix(mech, "-PLUS") {
		cb, err := client.Exporter(*x.tls)
		if err != nil {
			x.t.Fatal(err)
		}
		cl.Bind("tls-exporter", cb)
	}
	x.send(fmt.Sprintf("<auth xmlns='%s' mechanism='%s'>%s</auth>", nsSASL, mech, base64.StdEncoding.EncodeToString(cl.First())))
	for {
		el := x.el()
		data, _ := base64.StdEncoding.DecodeString(el.Text())
		switch el.Local {
		case "challenge":
			resp, err := cl.Final(data)
			if err != nil {
				x.t.Fatal(err)
			}
			x.send("<response xmlns='" + nsSASL + "'>" + base64.StdEncoding.EncodeToString(resp) + "</response>")
		case "success":
			if err := cl.Verify(data); err != nil {
				x.t.Fatalf("server signature: %v", err)
			}
			return el
		default:
			return el
		}
	}
}

func (x *wsc) bind(res string) string {
	x.t.Helper()
	x.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + res + "</resource></bind></iq>")
	el := x.el()
	if el.Get("type") != "result" || el.Space != stream.NSClient {
		x.t.Fatalf("bind: %s", el)
	}
	return el.FirstChild().ChildText("", "jid")
}

// login authenticates alice (SCRAM-SHA-256) and binds res.
func login(t *testing.T, url, res string) *wsc {
	t.Helper()
	x := dial(t, url, nil)
	x.open(xmpptest.Domain)
	if el := x.auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
		t.Fatalf("auth: %s", el)
	}
	x.open(xmpptest.Domain)
	x.bind(res)
	return x
}

// body reads until a message and returns its body.
func (x *wsc) body() string {
	x.t.Helper()
	for {
		el := x.el()
		if el.Local == "message" {
			return el.ChildText("", "body")
		}
	}
}

func TestScramBindMessagesResume(t *testing.T) {
	d := start(t, func(o *xmppd.Options) { o.AllowPlain = true })
	x := dial(t, wsURL(d), nil)
	f := x.open(xmpptest.Domain)
	s := f.String()
	if !strings.Contains(s, ">SCRAM-SHA-256<") || strings.Contains(s, "PLAIN<") || strings.Contains(s, "starttls") {
		t.Fatalf("features over plain HTTP: %s", s)
	}
	if el := x.auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
		t.Fatalf("auth: %s", el)
	}
	x.open(xmpptest.Domain)
	if j := x.bind("browser"); j != "alice@"+xmpptest.Domain+"/browser" {
		t.Fatalf("bound %q", j)
	}
	x.send("<enable xmlns='" + nsSM + "' resume='true'/>")
	en := x.el()
	if en.Local != "enabled" || en.Get("id") == "" {
		t.Fatalf("enable: %s", en)
	}
	x.send("<presence xmlns='jabber:client'/>")

	bob := xmpptest.Login(t, d, "bob", "tcp")
	bob.Send("<presence/>")
	// A large message (one WebSocket message, whole) and a small one.
	big := strings.Repeat("0123456789", 20<<10/10)
	x.send("<message xmlns='jabber:client' to='bob@" + xmpptest.Domain + "/tcp' type='chat'><body>" + big + "</body></message>")
	for {
		el := bob.El()
		if el.Local == "message" {
			if got := el.ChildText("", "body"); got != big {
				t.Fatalf("bob got %d bytes, want %d", len(got), len(big))
			}
			break
		}
	}
	bob.Send("<message to='alice@" + xmpptest.Domain + "/browser' type='chat'><body>" + big + "</body></message>")
	if got := x.body(); got != big {
		t.Fatalf("alice got %d bytes, want %d", len(got), len(big))
	}

	// The page reloads: the WebSocket dies without <close/>; a message
	// sent meanwhile arrives on the resumed session.
	x.c.CloseNow()
	bob.Send("<message to='alice@" + xmpptest.Domain + "/browser' type='chat'><body>while reloading</body></message>")
	y := dial(t, wsURL(d), nil)
	y.open(xmpptest.Domain)
	if el := y.auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
		t.Fatalf("auth: %s", el)
	}
	y.open(xmpptest.Domain)
	// Resuming may race the server noticing the old socket died: retry
	// on a fresh connection until it has.
	y.send("<resume xmlns='" + nsSM + "' previd='" + en.Get("id") + "' h='0'/>")
	el := y.el()
	for deadline := time.Now().Add(10 * time.Second); el.Local == "failed" && time.Now().Before(deadline); {
		y = dial(t, wsURL(d), nil)
		y.open(xmpptest.Domain)
		y.auth("SCRAM-SHA-256", "alice", "alice-pw")
		y.open(xmpptest.Domain)
		y.send("<resume xmlns='" + nsSM + "' previd='" + en.Get("id") + "' h='0'/>")
		el = y.el()
	}
	if el.Local != "resumed" {
		t.Fatalf("resume: %s", el)
	}
	seen := map[string]bool{}
	for !seen["while reloading"] {
		m := y.el()
		if m.Local == "message" {
			seen[m.ChildText("", "body")] = true
		}
	}
}

func TestPlainNeverOverPlainHTTP(t *testing.T) {
	d := start(t, func(o *xmppd.Options) { o.AllowPlain = true })
	x := dial(t, wsURL(d), nil)
	x.open(xmpptest.Domain)
	x.send("<auth xmlns='" + nsSASL + "' mechanism='PLAIN'>" + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alice-pw")) + "</auth>")
	if el := x.el(); el.Local != "failure" {
		t.Fatalf("PLAIN over plain HTTP: %s", el)
	}
}

func TestHTTPSChannelBindingAndPlain(t *testing.T) {
	d := start(t, func(o *xmppd.Options) { o.WebTLS, o.AllowPlain = "127.0.0.1:0", true })
	url := "wss://" + d.Web.TLSAddr.String() + ws.Path
	x := dial(t, url, nil)
	f := x.open(xmpptest.Domain)
	if s := f.String(); !strings.Contains(s, ">SCRAM-SHA-256-PLUS<") || !strings.Contains(s, ">PLAIN<") {
		t.Fatalf("features over HTTPS: %s", s)
	}
	if el := x.auth("SCRAM-SHA-256-PLUS", "alice", "alice-pw"); el.Local != "success" {
		t.Fatalf("SCRAM-SHA-256-PLUS over HTTPS: %s", el)
	}
}

func TestHostMeta(t *testing.T) {
	d := start(t, nil)
	resp, err := http.Get("http://" + d.Web.Addr.String() + "/.well-known/host-meta")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The name and scheme this client used (plain HTTP here: ws://).
	if !strings.Contains(string(b), "urn:xmpp:alt-connections:websocket") || !strings.Contains(string(b), `href="`+wsURL(d)+`"`) {
		t.Fatalf("host-meta: %s", b)
	}
}

func TestForeignOrigin(t *testing.T) {
	d := start(t, nil)
	for origin, want := range map[string]int{
		"https://evil.example":                     http.StatusForbidden,
		"null":                                     http.StatusForbidden,
		"http://" + d.Web.Addr.String():            http.StatusSwitchingProtocols,
		"http://localhost:1234":                    http.StatusSwitchingProtocols, // Dev: localhost is the box's
		"http://" + xmpptest.Domain:                http.StatusSwitchingProtocols,
		"http://" + xmpptest.Domain + ".evil.test": http.StatusForbidden,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, wsURL(d), &websocket.DialOptions{
			Subprotocols: []string{"xmpp"}, HTTPHeader: http.Header{"Origin": {origin}},
		})
		cancel()
		if resp == nil {
			t.Fatalf("%s: %v", origin, err)
		}
		if resp.StatusCode != want {
			t.Errorf("Origin %s: status %d, want %d", origin, resp.StatusCode, want)
		}
		if c != nil {
			c.CloseNow()
		}
	}
}

func TestWrongTo(t *testing.T) {
	d := start(t, nil)
	x := dial(t, wsURL(d), nil)
	x.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='other.test' version='1.0'/>")
	if el := x.el(); el.Local != "open" {
		t.Fatalf("no <open/> before the error: %s", el)
	}
	x.streamError("host-unknown")
}

func TestTwoStanzasInOneMessage(t *testing.T) {
	d := start(t, nil)
	x := login(t, wsURL(d), "two")
	m := "<message xmlns='jabber:client' to='bob@" + xmpptest.Domain + "'><body>x</body></message>"
	x.send(m + m)
	x.streamError("policy-violation")

	// Half an element, too.
	y := login(t, wsURL(d), "half")
	y.send("<message xmlns='jabber:client' to='bob@" + xmpptest.Domain + "'><body>x</body>")
	y.streamError("policy-violation")
}

func TestMessageOverLimit(t *testing.T) {
	d := start(t, nil)
	// Before authentication the limit is the pre-auth stanza limit.
	x := dial(t, wsURL(d), nil)
	x.open(xmpptest.Domain)
	x.send("<auth xmlns='" + nsSASL + "' mechanism='SCRAM-SHA-256'>" + strings.Repeat("A", stream.PreAuthLimits.MaxBytes) + "</auth>")
	x.streamError("policy-violation")
	// After it, the post-auth one; the message is refused as it streams
	// in, never buffered whole.
	y := login(t, wsURL(d), "big")
	y.send("<message xmlns='jabber:client' to='bob@" + xmpptest.Domain + "'><body>" + strings.Repeat("a", 4*stream.PostAuthLimits.MaxBytes) + "</body></message>")
	y.streamError("policy-violation")
}

// TestContinuationFlood: a message that never ends, sent as a stream of
// one-byte continuation frames, is ended by the stanza clock (its raw
// bytes shaped meanwhile), and other users are unaffected.
func TestContinuationFlood(t *testing.T) {
	d := start(t, func(o *xmppd.Options) { o.StanzaTimeout = time.Second })
	x := login(t, wsURL(d), "flood")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := x.c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("<message xmlns='jabber:client' to='bob@" + xmpptest.Domain + "'><body>"))
	go func() {
		// The server's close must be read for the writes to fail.
		for {
			if _, _, err := x.c.Read(ctx); err != nil {
				return
			}
		}
	}()
	began := time.Now()
	var werr error
	for i := 0; i < 10_000_000 && ctx.Err() == nil; i++ {
		if _, werr = w.Write([]byte("a")); werr != nil {
			break
		}
	}
	if werr == nil {
		t.Fatal("continuation flood still accepted after 30 s")
	}
	t.Logf("flood ended after %v: %v", time.Since(began), werr)
	// Others still log in and chat.
	y := login(t, wsURL(d), "after")
	y.send("<iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := y.el(); el.Get("type") != "result" {
		t.Fatalf("ping after the flood: %s", el)
	}
}

// TestNoPongClosed: a peer that never reads (so never answers a ping) is
// closed; one that reads stays.
func TestNoPongClosed(t *testing.T) {
	d := start(t, nil)
	h := ws.New(ws.Config{C2S: d.C2S, PingInterval: 200 * time.Millisecond, PongTimeout: 300 * time.Millisecond})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	alive := dial(t, url, nil)
	go func() {
		for {
			if _, _, err := alive.c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	silent := dial(t, url, nil)
	// Read the raw socket only: the WebSocket library never sees the
	// pings, so nothing answers them.
	silent.raw.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, err := io.Copy(io.Discard, silent.raw)
	if err != nil {
		t.Fatalf("silent peer not closed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := alive.c.Ping(ctx); err != nil {
		t.Fatalf("a peer that answers pings was closed too: %v", err)
	}
}

func TestBinaryMessageAndSubprotocol(t *testing.T) {
	d := start(t, nil)
	x := dial(t, wsURL(d), nil)
	x.open(xmpptest.Domain)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := x.c.Write(ctx, websocket.MessageBinary, []byte("<presence/>")); err != nil {
		t.Fatal(err)
	}
	x.streamError("unsupported-encoding")

	// RFC 7395 §3.1: no "xmpp" subprotocol, no WebSocket.
	_, resp, err := websocket.Dial(ctx, wsURL(d), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("without the xmpp subprotocol: %v %v", resp, err)
	}
}
