package socks5_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/socks5"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const proxy = "proxy." + iqtest.Domain

// start runs a server with the proxy on loopback; mod adjusts the proxy.
func start(t *testing.T, mod func(*socks5.Config)) (*xmppd.Daemon, *socks5.Proxy, string) {
	t.Helper()
	d := xmpptest.Start(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := socks5.Config{Listener: ln, Host: func() string { return "127.0.0.1" }}
	if mod != nil {
		mod(&cfg)
	}
	p := socks5.Serve(d.Server, cfg)
	t.Cleanup(p.Close)
	return d, p, ln.Addr().String()
}

// dial does the client side of XEP-0065's SOCKS5 handshake and returns
// the connection and the reply's status byte (0: accepted).
func dial(t *testing.T, addr, hash string) (net.Conn, byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte{5, 1, 0})
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil || b[1] != 0 {
		t.Fatalf("greeting: %v %v", b, err)
	}
	c.Write(append(append([]byte{5, 1, 0, 3, byte(len(hash))}, hash...), 0, 0))
	r := make([]byte, 5)
	if _, err := io.ReadFull(c, r); err != nil {
		return c, 0xff
	}
	if r[1] == 0 {
		rest := make([]byte, int(r[4])+2)
		if _, err := io.ReadFull(c, rest); err != nil || string(rest[:r[4]]) != hash {
			t.Fatalf("reply names %q: %v", rest, err)
		}
	}
	c.SetDeadline(time.Time{})
	return c, r[1]
}

func activate(c *iqtest.Client, sid, target string) string {
	return iqtest.Cond(c.IQ("set", proxy, "<query xmlns='"+socks5.NS+"' sid='"+sid+"'><activate>"+target+"</activate></query>"))
}

func TestTransfer(t *testing.T) {
	d, p, addr := start(t, nil)
	alice, bob := iqtest.Login(t, d, "alice", "r"), iqtest.Login(t, d, "bob", "r")

	// The streamhost, and the proxy in the domain's disco#items with
	// XEP-0065's identity.
	sh := alice.Result("get", proxy, "<query xmlns='"+socks5.NS+"'/>").Child(socks5.NS, "streamhost")
	if sh == nil || sh.Get("jid") != proxy || sh.Get("host") != "127.0.0.1" || "127.0.0.1:"+sh.Get("port") != addr {
		t.Fatalf("streamhost %v, want %s", sh, addr)
	}
	items := alice.Result("get", iqtest.Domain, "<query xmlns='http://jabber.org/protocol/disco#items'/>")
	if !strings.Contains(items.String(), "jid='"+proxy+"'") {
		t.Errorf("disco#items: %s", items)
	}
	info := alice.Result("get", proxy, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
	if !strings.Contains(info.String(), "category='proxy'") || !strings.Contains(info.String(), socks5.NS) {
		t.Errorf("disco#info: %s", info)
	}

	h := socks5.Hash("s1", alice.JID, bob.JID)
	tc, _ := dial(t, addr, h) // the target connects first
	if cond := activate(alice, "s1", bob.JID); cond != "item-not-found" {
		t.Errorf("activate with one side connected: %q, want item-not-found", cond)
	}
	ic, _ := dial(t, addr, h)
	// bob cannot activate alice's stream: his hash differs.
	if cond := activate(bob, "s1", alice.JID); cond != "item-not-found" {
		t.Errorf("bob activating: %q", cond)
	}
	if _, st := dial(t, addr, h); st == 0 {
		t.Error("a third connection for the same stream was accepted")
	}
	if cond := activate(alice, "s1", bob.JID); cond != "" {
		t.Fatalf("activate: %s", cond)
	}
	data := bytes.Repeat([]byte("plant photo "), 20000)
	go ic.Write(data)
	got := make([]byte, len(data))
	tc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(tc, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("target read: %v", err)
	}
	tc.Write([]byte("thanks"))
	back := make([]byte, 6)
	ic.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(ic, back); err != nil || string(back) != "thanks" {
		t.Fatalf("initiator read %q: %v", back, err)
	}
	// A stream once used cannot be activated again.
	if cond := activate(alice, "s1", bob.JID); cond != "item-not-found" {
		t.Errorf("second activation: %q", cond)
	}
	ic.Close()
	waitFor(t, "both connections closed", func() bool { return p.Conns() == 0 })
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := tc.Read(back); err != io.EOF {
		t.Errorf("target after the initiator left: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	d, p, addr := start(t, nil)
	alice := iqtest.Login(t, d, "alice", "r")
	for _, tc := range []struct{ name, payload, cond string }{
		{"no sid", "<query xmlns='" + socks5.NS + "'><activate>bob@" + iqtest.Domain + "/r</activate></query>", "bad-request"},
		{"no activate", "<query xmlns='" + socks5.NS + "' sid='x'/>", "bad-request"},
		{"bare target", "<query xmlns='" + socks5.NS + "' sid='x'><activate>bob@" + iqtest.Domain + "</activate></query>", "bad-request"},
		{"bad target", "<query xmlns='" + socks5.NS + "' sid='x'><activate>@@</activate></query>", "bad-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := iqtest.Cond(alice.IQ("set", proxy, tc.payload)); got != tc.cond {
				t.Errorf("%q, want %q", got, tc.cond)
			}
		})
	}
	// Another server's user gets neither the address nor an activation.
	answers := make(chan *stream.Element, 2)
	d.Server.Hook(server.StanzaRemote, 1000, func(st *server.Stanza) bool { answers <- st.El; return true })
	for _, q := range []*stream.Element{
		stream.New(stream.NSClient, "iq", "type", "get", "id", "r1", "from", "eve@evil.example/x", "to", proxy).Add(stream.New(socks5.NS, "query")),
		stream.New(stream.NSClient, "iq", "type", "set", "id", "r2", "from", "eve@evil.example/x", "to", proxy).Add(
			stream.New(socks5.NS, "query", "sid", "s").Add(stream.New(socks5.NS, "activate").AddText("bob@" + iqtest.Domain + "/r"))),
	} {
		d.Server.Route(q)
		select {
		case a := <-answers:
			if iqtest.Cond(a) != "forbidden" || strings.Contains(a.String(), "streamhost") {
				t.Errorf("remote: %s", a)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no answer to a remote iq")
		}
	}
	// Malformed SOCKS5: each is closed, and nothing stays behind.
	for _, tc := range []struct {
		name string
		send []byte
		want []byte
	}{
		{"SOCKS4", []byte{4, 1, 0, 80, 127, 0, 0, 1, 0}, nil},
		{"no methods", []byte{5, 0}, nil},
		{"only password auth", []byte{5, 1, 2}, []byte{5, 0xff}},
		{"CONNECT to an IP", []byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 22}, []byte{5, 0, 5, 7}},
		{"short hash", append([]byte{5, 1, 0, 5, 1, 0, 3, 4}, "abcd\x00\x00"...), []byte{5, 0, 5, 7}},
		{"BIND", append(append([]byte{5, 1, 0, 5, 2, 0, 3, 40}, strings.Repeat("a", 40)...), 0, 0), []byte{5, 0, 5, 7}},
		{"hash not hex", append(append([]byte{5, 1, 0, 5, 1, 0, 3, 40}, strings.Repeat("Z", 40)...), 0, 0), []byte{5, 0, 5, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			// The greeting first, as a client waits for its answer; the
			// server closing with bytes unread would be a reset.
			var got []byte
			send := tc.send
			if len(send) > 3 && send[0] == 5 && send[1] == 1 {
				c.Write(send[:3])
				got = make([]byte, 2)
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatal(err)
				}
				send = send[3:]
			}
			c.Write(send)
			rest, err := io.ReadAll(c)
			if err != nil && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("not closed: %v", err)
			}
			got = append(got, rest...)
			if !bytes.HasPrefix(got, tc.want) {
				t.Errorf("got % x, want % x…", got, tc.want)
			}
		})
	}
	waitFor(t, "refused connections released", func() bool { return p.Conns() == 0 })
}

func TestLimits(t *testing.T) {
	_, p, addr := start(t, func(c *socks5.Config) {
		c.MaxConns, c.PendingTimeout = 4, 500*time.Millisecond
	})
	var conns []net.Conn
	for i := 0; i < 4; i++ {
		c, st := dial(t, addr, socks5.Hash(string(rune('a'+i)), "x", "y"))
		if st != 0 {
			t.Fatalf("connection %d refused", i)
		}
		conns = append(conns, c)
	}
	// The fifth is closed before a byte is read.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second)) // the handshake allows 10 s
	if n, err := c.Read(make([]byte, 1)); err != io.EOF && !strings.Contains(fmt.Sprint(err), "reset") {
		t.Errorf("connection over the cap: read %d bytes, %v; want closed at once", n, err)
	}
	c.Close()
	// Nobody activates: after PendingTimeout every waiting connection is
	// closed and the cap is free again.
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("waiting connection: %v, want closed", err)
		}
	}
	waitFor(t, "expired connections released", func() bool { return p.Conns() == 0 })
	if _, st := dial(t, addr, socks5.Hash("z", "x", "y")); st != 0 {
		t.Error("refused after the cap freed")
	}
}

func TestRate(t *testing.T) {
	const rate = 64 << 10
	d, _, addr := start(t, func(c *socks5.Config) { c.Rate = rate })
	alice, bob := iqtest.Login(t, d, "alice", "r"), iqtest.Login(t, d, "bob", "r")
	h := socks5.Hash("s", alice.JID, bob.JID)
	tc, _ := dial(t, addr, h)
	ic, _ := dial(t, addr, h)
	if cond := activate(alice, "s", bob.JID); cond != "" {
		t.Fatal(cond)
	}
	data := make([]byte, rate*3/2)
	start := time.Now()
	go ic.Write(data)
	tc.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(tc, make([]byte, len(data))); err != nil {
		t.Fatal(err)
	}
	// 1.5 s of data at the rate; the last tenth may come early. A lower
	// bound only: a loaded machine is slower, never faster.
	if el := time.Since(start); el < 1200*time.Millisecond {
		t.Errorf("%d bytes at %d B/s took %v", len(data), rate, el)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
