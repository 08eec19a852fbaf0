//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSmacksBurst is the abuse list's "burst with stream management"
// against the running server: 3,000 messages to a member whose client
// acknowledges every <r/> at once, or 100 ms late like a phone. The bar:
// before, 734 of them vanished (and the phone's session was killed by a
// 107 KB burst). Every message must end delivered or bounced to its
// sender — stored ones count once they reach the client after it caught
// up — and the recipient's session must survive.
func TestSmacksBurst(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, 100 * time.Millisecond} {
		t.Run(fmt.Sprint("ack delay ", delay), func(t *testing.T) {
			s := startServer(t, serverOpts{})
			alicePw, bobPw := randomPassword(t), randomPassword(t)
			aliceJID := s.AddUser(t, "alice", alicePw)
			s.AddUser(t, "bob", bobPw)
			a, err := login(s.C2STLS, s.Domain, "127.0.0.1", "alice", alicePw, "phone")
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if a.Features.child(nsSM, "sm") == nil {
				t.Fatal("stream management not offered")
			}
			a.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
			if _, err := a.expect("<enabled/>", 10*time.Second, func(e *elem) bool { return e.is(nsSM, "enabled") }); err != nil {
				t.Fatal(err)
			}
			a.send("<presence/>")

			var mu sync.Mutex
			delivered := map[string]int{}
			bounced := map[string]int{}
			fromStorage := 0
			var aliceErr error
			aliceDone := make(chan struct{})
			go func() {
				defer close(aliceDone)
				var h, sentH uint32
				var wmu sync.Mutex
				ack := func(n uint32) {
					// Timers firing together may run in either order; a
					// client's acknowledgements only grow.
					wmu.Lock()
					defer wmu.Unlock()
					if n > sentH {
						sentH = n
						a.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", n))
					}
				}
				for e := range a.events {
					switch {
					case e.Name.Space == nsClient:
						mu.Lock()
						h++
						if e.is(nsClient, "message") && e.attr("type") == "chat" {
							delivered[e.attr("id")]++
							if e.child("urn:xmpp:delay", "delay") != nil {
								fromStorage++
							}
						}
						mu.Unlock()
					case e.is(nsSM, "r"):
						mu.Lock()
						n := h
						mu.Unlock()
						if delay == 0 {
							ack(n)
						} else {
							time.AfterFunc(delay, func() { ack(n) })
						}
					case streamErrorCondition(e) != "" || e.Name == evClose:
						mu.Lock()
						aliceErr = fmt.Errorf("stream ended: %v", e)
						mu.Unlock()
					}
				}
			}()

			b, err := login(s.C2STLS, s.Domain, "127.0.0.1", "bob", bobPw, "b")
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			go func() {
				for e := range b.events {
					if e.is(nsClient, "message") && e.attr("type") == "error" {
						mu.Lock()
						bounced[e.attr("id")]++
						mu.Unlock()
					}
				}
			}()
			const n = 3000
			var burst strings.Builder
			for i := range n {
				fmt.Fprintf(&burst, "<message to='%s' type='chat' id='b%d'><body>burst %d</body></message>", aliceJID, i, i)
			}
			start := time.Now()
			if err := b.send(burst.String()); err != nil {
				t.Fatal(err)
			}
			ended := func() int {
				mu.Lock()
				defer mu.Unlock()
				k := len(delivered)
				for id := range bounced {
					if delivered[id] == 0 {
						k++
					}
				}
				return k
			}
			deadline := time.Now().Add(2 * time.Minute)
			for ended() < n && time.Now().Before(deadline) {
				select {
				case <-aliceDone:
					t.Fatalf("the recipient's connection ended: %v", a.rerr)
				case <-time.After(50 * time.Millisecond):
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if aliceErr != nil {
				t.Fatalf("the recipient's session did not survive: %v", aliceErr)
			}
			missing, twice := 0, 0
			for i := range n {
				id := fmt.Sprintf("b%d", i)
				d, bo := delivered[id], bounced[id]
				if d+bo == 0 {
					missing++
				}
				if d > 1 || bo > 1 || d > 0 && bo > 0 {
					twice++
				}
			}
			t.Logf("%s: %d messages in %v: %d delivered (%d of them from storage), %d bounced, %d neither, %d more than once",
				s.Kind, n, time.Since(start).Round(time.Millisecond), len(delivered), fromStorage, len(bounced), missing, twice)
			if missing > 0 {
				t.Errorf("%d of %d messages were neither delivered nor bounced", missing, n)
			}
			if twice > 0 {
				t.Errorf("%d messages ended more than once", twice)
			}
			if len(delivered) == 0 {
				t.Error("nothing was delivered: the test proved nothing")
			}
		})
	}
}
