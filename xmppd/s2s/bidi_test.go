package s2s_test

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/s2s"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// established counts the kernel's established TCP connections (IPv4 and
// IPv6) that have one end on one of ports on this machine: each
// connection to a server listening on one of them counts once (its
// other end, an ephemeral port, is not in ports).
func established(t testing.TB, ports ...int) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			if f == "/proc/net/tcp6" {
				continue // no IPv6 on this machine
			}
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // the header line
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "01" { // TCP_ESTABLISHED
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			if err == nil && slices.Contains(ports, int(p)) {
				n++
			}
		}
		fh.Close()
	}
	return n
}

// s2sPorts are a box's inbound s2s ports (STARTTLS and direct TLS).
func (b *box) s2sPorts() []int {
	ports := []int{b.d.S2SAddr().(*net.TCPAddr).Port}
	if a := b.d.S2STLSAddr(); a != nil {
		ports = append(ports, a.(*net.TCPAddr).Port)
	}
	return ports
}

// XEP-0288 between two Hearths: b.test answers alice over the stream
// a.test opened, so however much flows both ways there is one TCP
// connection between them (without bidi: two, one per direction).
func TestBidiOneConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		tune func(*s2s.Config)
		auth string
	}{
		{"certificates", nil, "auth=EXTERNAL bidi=true"},
		// Dialback: b.test verifies a.test's key on a connection of its
		// own (the connect-back), which ends once answered.
		{"dialback", func(c *s2s.Config) { c.NoClientCert = true }, "auth=dialback bidi=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			a := w.start(t, "a.test", nil, tc.tune)
			b := w.start(t, "b.test", nil, tc.tune)
			alice, bob := a.login(t, "alice"), b.login(t, "bob")
			ports := append(a.s2sPorts(), b.s2sPorts()...)
			for i := range 3 {
				alice.Send(fmt.Sprintf("<message to='bob@b.test' type='chat' id='a%d'><body>to bob %d</body></message>", i, i))
				expect(t, bob, "alice's message", message("alice@a.test/r", "bob@b.test"))
				bob.Send(fmt.Sprintf("<message to='alice@a.test/r' type='chat' id='b%d'><body>to alice %d</body></message>", i, i))
				expect(t, alice, "bob's message", message("bob@b.test/r", "alice@a.test"))
				if i == 0 {
					// The dialback connect-back may still be closing.
					deadline := time.Now().Add(10 * time.Second)
					for established(t, ports...) != 1 && time.Now().Before(deadline) {
						time.Sleep(20 * time.Millisecond)
					}
				}
				if n := established(t, ports...); n != 1 {
					t.Fatalf("round %d: %d TCP connections between a.test and b.test, want 1", i, n)
				}
			}
			if !a.log.has(`msg="s2s: connected out" domain=b.test from=a.test ` + tc.auth) {
				t.Errorf("a.test's stream to b.test not %s", tc.auth)
			}
			if !b.log.has(`msg="s2s: sending on a bidirectional stream" domain=a.test from=b.test`) {
				t.Error("b.test did not answer on a.test's stream")
			}
			if b.log.has(`msg="s2s: connected out" domain=a.test from=b.test`) {
				t.Error("b.test dialled a.test")
			}
		})
	}
}

// bidiPeer opens a stream to a as peer.test (a certificate from the test
// CA, no DNS records: a.test cannot dial it), asks for bidi if ask, and
// authenticates by SASL EXTERNAL if auth — then sends alice a message
// and waits for it: a.test has handled what came before it.
func bidiPeer(t *testing.T, w *world, a *box, alice *xmpptest.Client, ask, auth bool) *peer {
	t.Helper()
	dir := t.TempDir()
	w.ca.Issue(t, filepath.Join(dir, "p.pem"), filepath.Join(dir, "p.key"), "peer.test")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "p.pem"), filepath.Join(dir, "p.key"))
	if err != nil {
		t.Fatal(err)
	}
	p := dialPeer(t, a, "peer.test")
	f := p.starttls("peer.test", "a.test", &cert)
	if f.Child("urn:xmpp:features:bidi", "bidi") == nil {
		t.Fatalf("bidi not offered after TLS: %s", f)
	}
	if ask {
		p.Send("<bidi xmlns='urn:xmpp:bidi'/>")
	}
	if auth {
		p.Send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" + base64.StdEncoding.EncodeToString([]byte("peer.test")) + "</auth>")
		if el := p.El(); el.Local != "success" {
			t.Fatalf("EXTERNAL: %s", el)
		}
		p.P.Restart()
		p.open("peer.test", "a.test")
		p.Send("<message from='x@peer.test' to='alice@a.test/r' type='chat' id='sync'><body>sync</body></message>")
		expect(t, alice, "the peer's message", message("x@peer.test", "alice@a.test"))
	}
	return p
}

// Inbound: a peer that asked for bidi gets our stanzas for the pair it
// authenticated on its own stream — and only those, and only once
// authenticated.
func TestBidiInbound(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", nil, func(c *s2s.Config) { c.RetryFor = time.Second })
	alice := a.login(t, "alice")

	t.Run("authenticated", func(t *testing.T) {
		p := bidiPeer(t, w, a, alice, true, true)
		if got := a.d.S2S().BidiPairs(); !slices.Equal(got, []string{"a.test peer.test"}) {
			t.Fatalf("pairs %v, want [a.test peer.test]", got)
		}
		alice.Send("<message to='x@peer.test' type='chat' id='in1'><body>over your stream</body></message>")
		el := p.El()
		if el.Local != "message" || el.Get("from") != "alice@a.test/r" || el.Get("to") != "x@peer.test" || el.Space != s2s.NSServer {
			t.Fatalf("peer got %s", el)
		}
		// And it may answer on the same stream.
		p.Send("<message from='x@peer.test' to='alice@a.test/r' type='chat' id='back'><body>back</body></message>")
		expect(t, alice, "the answer", message("x@peer.test", "alice@a.test"))
		// Its end ends the pair: the next message has no way to peer.test.
		p.Send("</stream:stream>")
		for {
			if ev, err := p.Next(); err != nil || ev.Kind == stream.Close {
				break
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(a.d.S2S().BidiPairs()) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("pairs %v after the peer left", a.d.S2S().BidiPairs())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("not authenticated", func(t *testing.T) {
		p := bidiPeer(t, w, a, alice, true, false)
		alice.Send("<message to='x@peer.test' type='chat' id='in2'><body>not yet</body></message>")
		el := expect(t, alice, "the bounce", func(el *stream.Element) bool { return el.Get("id") == "in2" })
		if errCond(el) != "remote-server-not-found" {
			t.Errorf("bounce %s", el)
		}
		p.Raw.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if ev, err := p.P.Next(); err == nil {
			t.Fatalf("an unauthenticated peer got %v %s", ev.Kind, ev.El)
		}
	})
	t.Run("not asked", func(t *testing.T) {
		p := bidiPeer(t, w, a, alice, false, true)
		if got := a.d.S2S().BidiPairs(); len(got) != 0 {
			t.Fatalf("pairs %v without a request", got)
		}
		alice.Send("<message to='x@peer.test' type='chat' id='in4'><body>not asked</body></message>")
		el := expect(t, alice, "the bounce", func(el *stream.Element) bool { return el.Get("id") == "in4" })
		if errCond(el) != "remote-server-not-found" {
			t.Errorf("bounce %s", el)
		}
		p.Raw.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if ev, err := p.P.Next(); err == nil {
			t.Fatalf("a peer that did not ask got %v %s", ev.Kind, ev.El)
		}
	})
	t.Run("other local domain", func(t *testing.T) {
		// The pair is a.test → peer.test: our group chat service has
		// not been authenticated to the peer on this stream.
		p := bidiPeer(t, w, a, alice, true, true)
		a.d.Server.Route(stream.New(stream.NSClient, "message", "from", "groups.a.test", "to", "x@peer.test", "type", "chat", "id", "svc").
			Add(stream.New(stream.NSClient, "body").AddText("from the service")))
		alice.Send("<message to='x@peer.test' type='chat' id='in3'><body>after</body></message>")
		if el := p.El(); el.Get("id") != "in3" {
			t.Fatalf("peer got %s, want alice's in3 only", el)
		}
	})
}

// Outbound: a peer that offers bidi is asked for it, and may then send
// from its domain on our stream — from no other.
func TestBidiOutbound(t *testing.T) {
	alice, s := handPeer(t) // dbanswer_test.go
	s.Send("<db:result from='peer.test' to='a.test' type='valid'/>")
	if el := s.El(); el.Get("id") != "o1" {
		t.Fatalf("want alice's message, got %s", el)
	}
	// The peer's answer on our stream reaches alice.
	s.Send("<message from='x@peer.test/r' to='alice@a.test/r' type='chat' id='p1'><body>answer</body></message>")
	expect(t, alice, "the answer", message("x@peer.test/r", "alice@a.test"))
	// Another of its domains must piggyback first; we refuse that
	// (its key is for a stream id this stream has not).
	s.Send("<db:result from='conf.peer.test' to='a.test'>key</db:result>")
	if el := s.El(); el.Local != "result" || el.Get("type") != "error" || el.Get("to") != "conf.peer.test" {
		t.Fatalf("piggyback answer %s", el)
	}
	// A stanza from a domain it did not authenticate ends the stream.
	s.Send("<message from='x@conf.peer.test' to='alice@a.test/r' type='chat' id='p2'><body>forged</body></message>")
	s.StreamError("invalid-from")
}

// A bidirectional stream stays open while either side uses it — here only
// b.test writes on a.test's stream, so b.test reads nothing for longer
// than its idle time — and is closed once neither side did for the idle
// time.
func TestBidiIdle(t *testing.T) {
	const idle = 400 * time.Millisecond
	w := newWorld(t)
	short := func(c *s2s.Config) { c.IdleTimeout = idle }
	a := w.start(t, "a.test", nil, short)
	b := w.start(t, "b.test", nil, short)
	alice, bob := a.login(t, "alice"), b.login(t, "bob")
	ports := append(a.s2sPorts(), b.s2sPorts()...)
	alice.Send("<message to='bob@b.test' type='chat' id='first'><body>first</body></message>")
	expect(t, bob, "alice's message", message("alice@a.test/r", "bob@b.test"))
	for i := range 8 { // 8 × idle/3: well past the idle time, one way only
		bob.Send(fmt.Sprintf("<message to='alice@a.test/r' type='chat' id='b%d'><body>%d</body></message>", i, i))
		expect(t, alice, "bob's message", message("bob@b.test/r", "alice@a.test"))
		if n := established(t, ports...); n != 1 {
			t.Fatalf("message %d: %d TCP connections, want the one", i, n)
		}
		time.Sleep(idle / 3)
	}
	if a.log.has("link ended by peer") || b.log.has("link ended by peer") {
		t.Error("the stream ended while in use")
	}
	// Now idle both ways: closed (not parked for ever) — after at least
	// twice the queue's 2 s confirmation window, else what was written
	// last goes out again on a new connection.
	limit := 8*time.Second + 10*idle
	deadline := time.Now().Add(limit)
	for established(t, ports...) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left %v after the last use", established(t, ports...), limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	alice.Raw.SetReadDeadline(time.Now().Add(5 * idle))
	if ev, err := alice.P.Next(); err == nil {
		t.Fatalf("after the close alice got %v %s (written again?)", ev.Kind, ev.El)
	}
	if pairs := b.d.S2S().BidiPairs(); len(pairs) != 0 {
		t.Errorf("b.test still lists %v", pairs)
	}
}
