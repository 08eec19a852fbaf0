package s2s_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/s2s"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Issue 14's "a peer that never reads": our writes fill its TCP window, a
// write gives up after WriteTimeout and the link is closed. Until then
// what waits is bounded by the queue's cap (the rest bounces to the
// member), and the member's session and local chat go on.
func TestPeerThatNeverReads(t *testing.T) {
	alice, s := handPeer(t, func(c *s2s.Config) {
		c.WriteTimeout = time.Second
		c.MaxQueueBytes = 64 << 10
	})
	s.Send("<db:result from='peer.test' to='a.test' type='valid'/>")
	if el := s.El(); el.Get("id") != "o1" {
		t.Fatalf("want alice's first message, got %s", el)
	}
	// peer.test reads nothing from now on, with a small receive buffer
	// so that the link's writes block soon.
	s.Raw.(*net.TCPConn).SetReadBuffer(4096)
	// Small messages (a bounce carries its message back to alice) sent at
	// the pace alice reads her bounces; bounded in count and time.
	body := strings.Repeat("x", 1000)
	deadline := time.Now().Add(60 * time.Second)
	bounced := 0
	for i := 0; i < 20000 && bounced == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("no message bounced in 60 s: the queue toward a peer that reads nothing is not bounded")
		}
		alice.Send(fmt.Sprintf("<message to='x@peer.test' type='chat' id='f%d'><body>%s</body></message>", i, body))
		if i%50 == 49 {
			// A ping shows what the server sent alice meanwhile.
			alice.Send(fmt.Sprintf("<iq type='get' id='p%d' to='a.test'><ping xmlns='urn:xmpp:ping'/></iq>", i))
			for {
				el := alice.El()
				if el.Local == "message" && el.Get("type") == "error" {
					bounced++
				}
				if el.Local == "iq" && el.Get("id") == fmt.Sprintf("p%d", i) {
					break
				}
			}
		}
	}
	t.Logf("%d bounced while the peer read nothing", bounced)
	// Local chat is unaffected.
	alice.Send("<message to='alice@a.test' type='chat' id='local'><body>still here</body></message>")
	for el := alice.El(); el.Get("id") != "local"; el = alice.El() {
	}
	// The link was closed: what the peer never read drains and then the
	// stream or the connection ends (an open link would go on for ever,
	// the queue refilling it).
	// The peer cannot see our write deadline expire without reading
	// (which would unblock the write): give it three times its length.
	time.Sleep(3 * time.Second)
	s.Raw.(*net.TCPConn).SetReadBuffer(4 << 20) // drain at loopback speed
	s.Raw.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		ev, err := s.Next()
		if err != nil {
			if strings.Contains(err.Error(), "timeout") {
				t.Fatal("the link to a peer that stopped reading was never closed")
			}
			return
		}
		if ev.Kind == stream.Close {
			return
		}
	}
}
