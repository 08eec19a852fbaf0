package smacks_test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// tally counts, per message id, how each message ended.
type tally struct {
	mu        sync.Mutex
	delivered map[string]int
	bounced   map[string]int
	delayed   int // delivered from offline storage (XEP-0203 stamp)
}

func newTally() *tally { return &tally{delivered: map[string]int{}, bounced: map[string]int{}} }

func (t *tally) deliver(el *stream.Element) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.delivered[el.Get("id")]++
	if el.Child("urn:xmpp:delay", "delay") != nil {
		t.delayed++
	}
}

func (t *tally) bounce(id string) {
	t.mu.Lock()
	t.bounced[id]++
	t.mu.Unlock()
}

// ended is how many distinct messages ended delivered or bounced.
func (t *tally) ended() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.delivered)
	for id := range t.bounced {
		if t.delivered[id] == 0 {
			n++
		}
	}
	return n
}

func (t *tally) check(tb testing.TB, ids []string) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	missing := 0
	for _, id := range ids {
		d, b := t.delivered[id], t.bounced[id]
		switch {
		case d == 0 && b == 0:
			missing++
		case d > 1 || b > 1 || d > 0 && b > 0:
			tb.Errorf("%s delivered %d times and bounced %d times", id, d, b)
		}
	}
	if missing > 0 {
		tb.Errorf("%d of %d messages never reached the client nor bounced (delivered %d, bounced %d)", missing, len(ids), len(t.delivered), len(t.bounced))
	}
}

// readBounces reads the sender's stream and records bounced message ids.
func readBounces(c *xmpptest.Client, tl *tally) {
	for {
		c.Raw.SetReadDeadline(time.Now().Add(2 * time.Minute))
		ev, err := c.P.Next()
		if err != nil {
			return
		}
		if el := ev.El; el != nil && el.Local == "message" && el.Get("type") == "error" {
			tl.bounce(el.Get("id"))
		}
	}
}

// ackingReader reads a stream-management client's stream: it counts
// handled stanzas, records messages, and answers each <r/> after delay.
type ackingReader struct {
	c     *xmpptest.Client
	wmu   sync.Mutex
	mu    sync.Mutex
	h     uint32
	delay time.Duration
	tl    *tally
	done  chan struct{}
	err   error // why the stream ended
	last  string
	sentH uint32
}

// ack sends <a h/>, never going backwards: timers that fire together may
// run in either order, and a real client's acks only grow.
func (a *ackingReader) ack(h uint32) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if h <= a.sentH {
		return
	}
	a.sentH = h
	a.c.C.SetWriteDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(a.c.C, "<a xmlns='%s' h='%d'/>", ns, h)
}

func (a *ackingReader) run() {
	defer close(a.done)
	for {
		a.c.Raw.SetReadDeadline(time.Now().Add(2 * time.Minute))
		ev, err := a.c.P.Next()
		if err != nil {
			a.err = err
			return
		}
		if ev.Kind != stream.Stanza {
			a.err = fmt.Errorf("stream event %v after %s", ev.Kind, a.last)
			return
		}
		el := ev.El
		a.last = el.String()
		if len(a.last) > 300 {
			a.last = a.last[:300]
		}
		switch {
		case el.Space == stream.NSClient:
			a.mu.Lock()
			a.h++
			a.mu.Unlock()
			if el.Local == "message" && el.Get("type") == "chat" {
				a.tl.deliver(el)
			}
		case el.Space == ns && el.Local == "r":
			a.mu.Lock()
			h := a.h
			a.mu.Unlock()
			if a.delay == 0 {
				a.ack(h)
			} else {
				time.AfterFunc(a.delay, func() { a.ack(h) })
			}
		}
	}
}

// Abuse list, burst with stream management: 3,000 messages to a member
// whose client acknowledges every <r/> at once, or 100 ms later like a
// phone. Before: hundreds arrived nowhere and the slow phone's session was
// killed. Now every message ends delivered (live, or from storage once the
// client caught up), or bounced to its sender; the session survives.
func TestBurstToSlowAcker(t *testing.T) {
	for _, delay := range []time.Duration{0, 100 * time.Millisecond} {
		t.Run(fmt.Sprint("ack delay ", delay), func(t *testing.T) {
			d := xmpptest.Start(t, func(o *xmppd.Options) { o.NoShaping = true })
			alice := xmpptest.Login(t, d, "alice", "phone")
			alice.Send("<enable xmlns='" + ns + "' resume='true'/>")
			if el := alice.El(); el.Local != "enabled" {
				t.Fatal(el)
			}
			alice.Send("<presence/>")
			tl := newTally()
			ar := &ackingReader{c: alice, delay: delay, tl: tl, done: make(chan struct{})}
			go ar.run()
			bob := xmpptest.Login(t, d, "bob", "b")
			go readBounces(bob, tl)

			const n = 3000
			ids := make([]string, n)
			var burst strings.Builder
			for i := range n {
				ids[i] = fmt.Sprintf("b%d", i)
				fmt.Fprintf(&burst, "<message to='alice@%s' type='chat' id='%s'><body>%d</body></message>", xmpptest.Domain, ids[i], i)
			}
			start := time.Now()
			bob.Send(burst.String())

			deadline := time.Now().Add(90 * time.Second)
			for tl.ended() < n && time.Now().Before(deadline) {
				select {
				case <-ar.done:
					t.Fatalf("the recipient's connection ended: %v", ar.err)
				case <-time.After(50 * time.Millisecond):
				}
			}
			tl.check(t, ids)
			s := d.Server.Router.Session("alice", "phone")
			if s == nil || s.Closing() || s.Ended() {
				t.Fatal("the recipient's session did not survive the burst")
			}
			tl.mu.Lock()
			t.Logf("%d messages in %v: %d delivered (%d of them from storage), %d bounced",
				n, time.Since(start).Round(time.Millisecond), len(tl.delivered), tl.delayed, len(tl.bounced))
			if delay > 0 && tl.delayed == 0 {
				t.Error("nothing went through storage: the test never reached the high-water mark")
			}
			tl.mu.Unlock()
		})
	}
}

// issue 9, item 3: a phone vanishes while the server is writing to it. The
// writer's timeout sees the dead link first; the session must still
// hibernate, and the resumed stream must carry every stanza the phone
// never acknowledged. Headlines fill the socket: they are never diverted
// to storage, so all of them must come back on resumption.
func TestResumeAfterWriteTimeout(t *testing.T) {
	old := session.SetWriteTimeout(200 * time.Millisecond)
	t.Cleanup(func() { session.SetWriteTimeout(old) })
	d := xmpptest.Start(t, func(o *xmppd.Options) { o.NoShaping = true })
	a := xmpptest.Login(t, d, "alice", "phone")
	a.Send("<enable xmlns='" + ns + "' resume='true'/>")
	en := a.El()
	id := en.Get("id")
	if en.Local != "enabled" || id == "" {
		t.Fatal(en)
	}
	// The phone stops reading; a small window makes its socket fill soon.
	if tc, ok := a.Raw.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	b := xmpptest.Login(t, d, "bob", "b")
	go readBounces(b, newTally())
	body := strings.Repeat("x", 100<<10)
	sess := d.Server.Router.Session("alice", "phone")
	// Paced well below what would overflow the queue (MaxQueue) within
	// the write timeout, so that the writer's timeout is what sees the
	// link die.
	sent := 0
	for !sess.Detached() {
		if sess.Ended() {
			t.Fatal("the session ended instead of hibernating")
		}
		if sent == 300 {
			t.Fatal("the server never gave up writing to the vanished phone")
		}
		b.Send(fmt.Sprintf("<message to='alice@%s/phone' type='headline' id='h%d'><body>%s</body></message>", xmpptest.Domain, sent, body))
		sent++
		time.Sleep(100 * time.Millisecond) // pacing, not synchronisation
	}
	if sess.Ended() {
		t.Fatal("the session ended instead of hibernating")
	}
	a.Raw.Close()
	// The resumed link gets the usual patience: at 200 ms a reader slowed
	// by the race detector could not keep up with the backlog (a CI run's
	// resumed link timed out too, and the client read a record cut short).
	session.SetWriteTimeout(old)

	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	if el := c.Auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
		t.Fatal(el)
	}
	c.Open()
	c.Send("<resume xmlns='" + ns + "' previd='" + id + "' h='0'/>")
	if el := c.El(); el.Local != "resumed" {
		t.Fatalf("resume after the write timeout: %s", el)
	}
	// Every headline bob sent, then the server's <r/>.
	got := map[string]int{}
	for {
		el := c.El()
		if el.Space == ns && el.Local == "r" {
			break
		}
		if el.Local == "message" {
			got[el.Get("id")]++
		}
	}
	for i := 0; i < sent; i++ {
		if n := got[fmt.Sprintf("h%d", i)]; n != 1 {
			t.Errorf("h%d resent %d times", i, n)
		}
	}
	t.Logf("the write timed out after %d headlines of 100 KiB; all resent on resumption", sent)
}
