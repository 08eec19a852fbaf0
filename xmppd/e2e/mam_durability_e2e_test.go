//go:build e2e

package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	nsMAM     = "urn:xmpp:mam:2"
	nsRSM     = "http://jabber.org/protocol/rsm"
	nsForward = "urn:xmpp:forward:0"
	nsSID     = "urn:xmpp:sid:0"
)

// TestDurabilityOnlineAndHibernating is TestDurability (SIGKILL at a
// random moment while a writer sends numbered messages) for recipients
// that are online, hibernating (XEP-0198: their connection died, their
// session waits to be resumed) and offline, four of each (issue 13:
// "acknowledged" used to mean "in memory" for the first two). After each
// restart every recipient logs in as a phone that syncs from the message
// archive: it pages through MAM, then sends its initial presence and takes
// what offline storage still has. Checked for every message the server
// acknowledged: it is in its recipient's archive exactly once, and it
// reached the client (live before the kill, from the archive or from
// offline storage) — and nothing offline storage sends after the archive
// sync repeats a message the archive gave.
func TestDurabilityOnlineAndHibernating(t *testing.T) {
	t.Parallel()
	if backend != "xmppd" {
		t.Skip("xmppd's archive and stream management")
	}
	const (
		rounds = 6
		each   = 4 // readers of each kind
		// One sender's share of one recipient's offline storage (250):
		// a hibernating recipient's messages may end there.
		maxMessages = 3 * each * 250
	)
	s := startServer(t, serverOpts{})
	sendPw, rcptPw := randomPassword(t), randomPassword(t)
	s.AddUser(t, "writer", sendPw)
	type reader struct{ user, kind, jid string }
	var readers []reader
	for _, kind := range []string{"online", "hibernating", "offline"} {
		for i := 1; i <= each; i++ {
			u := fmt.Sprintf("%s%d", kind, i)
			readers = append(readers, reader{u, kind, s.AddUser(t, u, rcptPw)})
		}
	}
	rcpts := make([]string, len(readers))
	for i, r := range readers {
		rcpts[i] = r.jid
	}

	totalAcked := 0
	for round := 1; round <= rounds; round++ {
		// The recipients' state when the writer starts.
		var live []*liveReader
		for _, r := range readers {
			switch r.kind {
			case "online":
				lr, err := startLiveReader(s, r.user, rcptPw)
				if err != nil {
					t.Fatalf("round %d: %s: %v", round, r.user, err)
				}
				live = append(live, lr)
			case "hibernating":
				if err := hibernate(s, r.user, rcptPw); err != nil {
					t.Fatalf("round %d: %s: %v", round, r.user, err)
				}
			}
		}
		res := sendUntilKilled(t, s, round, sendPw, rcpts, maxMessages)
		totalAcked += res.acked
		gotLive := map[string][]string{}
		for _, lr := range live {
			gotLive[lr.user] = lr.stop()
		}
		t.Logf("round %d: %s; sent %d, acknowledged %d, killed after %v", round, res.mode, res.sent, res.acked, res.killedAfter)

		s.Start(t)
		prefix := fmt.Sprintf("r%d-", round)
		type synced struct {
			mam, offline []string
			err          error
		}
		out := make([]synced, len(readers))
		var wg sync.WaitGroup
		for i, r := range readers {
			wg.Go(func() {
				out[i].mam, out[i].offline, out[i].err = syncFromArchive(s, r.user, rcptPw, prefix)
			})
		}
		wg.Wait()
		for i, r := range readers {
			if out[i].err != nil {
				t.Fatalf("round %d: %s could not sync after the restart: %v", round, r.user, out[i].err)
			}
			inArchive := map[int]int{}
			reached := map[int]bool{}
			for _, b := range out[i].mam {
				n := msgNumber(b, prefix)
				inArchive[n]++
				reached[n] = true
			}
			for _, b := range out[i].offline {
				n := msgNumber(b, prefix)
				if inArchive[n] > 0 {
					t.Errorf("round %d: %s: %s sent again from offline storage after the archive gave it", round, r.user, b)
				}
				reached[n] = true
			}
			for _, b := range gotLive[r.user] {
				reached[msgNumber(b, prefix)] = true
			}
			var lost, unarchived, twice []int
			for n := i + 1; n <= res.acked; n += len(readers) {
				if !reached[n] {
					lost = append(lost, n)
				}
				if inArchive[n] == 0 {
					unarchived = append(unarchived, n)
				}
			}
			for n, c := range inArchive {
				if c > 1 {
					twice = append(twice, n)
				}
				if n < 1 || n > res.sent || (n-1)%len(readers) != i {
					t.Errorf("round %d: %s: archive holds m%d, which was never sent to it", round, r.user, n)
				}
			}
			if len(lost) > 0 {
				t.Errorf("round %d: %s (%s): %d acknowledged messages never reached the client: %s", round, r.user, r.kind, len(lost), ranges(lost))
			}
			if len(unarchived) > 0 {
				t.Errorf("round %d: %s (%s): %d acknowledged messages not in the archive: %s", round, r.user, r.kind, len(unarchived), ranges(unarchived))
			}
			if len(twice) > 0 {
				t.Errorf("round %d: %s: archived more than once: %s", round, r.user, ranges(twice))
			}
		}
		if t.Failed() {
			break
		}
	}
	t.Logf("all rounds: %d acknowledged", totalAcked)
	if totalAcked == 0 {
		t.Errorf("no message was ever acknowledged in %d rounds: the test proved nothing", rounds)
	}
}

func msgNumber(body, prefix string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(body, prefix+"m"))
	if err != nil || !strings.HasPrefix(body, prefix) {
		return -1
	}
	return n
}

// liveReader is an online recipient with stream management that answers
// every <r/> and records the bodies it got.
type liveReader struct {
	user   string
	c      *xconn
	mu     sync.Mutex
	bodies []string
	done   chan struct{}
}

func startLiveReader(s *server, user, pw string) (*liveReader, error) {
	c, err := login(s.C2STLS, s.Domain, "127.0.0.1", user, pw, "live")
	if err != nil {
		return nil, err
	}
	c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/><presence/>")
	if _, err := c.expect("<enabled/>", 5*time.Second, func(e *elem) bool { return e.is(nsSM, "enabled") }); err != nil {
		c.Close()
		return nil, err
	}
	lr := &liveReader{user: user, c: c, done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		h := 0
		for e := range c.events {
			switch {
			case e.is(nsClient, "message") || e.is(nsClient, "iq") || e.is(nsClient, "presence"):
				h++
				if b := e.child(nsClient, "body"); b != nil && bodyRE.MatchString(b.Text) {
					lr.mu.Lock()
					lr.bodies = append(lr.bodies, b.Text)
					lr.mu.Unlock()
				}
			case e.is(nsSM, "r"):
				c.send(fmt.Sprintf("<a xmlns='urn:xmpp:sm:3' h='%d'/>", h))
			}
		}
	}()
	return lr, nil
}

// stop closes the connection (the server is dead by now) and returns
// what arrived.
func (lr *liveReader) stop() []string {
	lr.c.Close()
	<-lr.done
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.bodies
}

// hibernate logs user in with resumable stream management, goes
// available, and drops the TCP connection without a word: the session
// waits for a resumption that never comes while messages queue for it.
func hibernate(s *server, user, pw string) error {
	c, err := login(s.C2STLS, s.Domain, "127.0.0.1", user, pw, "phone")
	if err != nil {
		return err
	}
	defer c.Close()
	c.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/><presence/>")
	if _, err := c.expect("<enabled/>", 5*time.Second, func(e *elem) bool { return e.is(nsSM, "enabled") }); err != nil {
		return err
	}
	// The presence is handled before the ping's answer: the session is
	// available when the connection drops.
	return c.ping("hib", 5*time.Second)
}

// syncFromArchive logs user in like a phone back after its resume window:
// it pages through its archive (keeping this round's bodies), then sends
// its initial presence and collects what offline storage sends until the
// stream is quiet for 2 s.
func syncFromArchive(s *server, user, pw, prefix string) (mam, offline []string, err error) {
	c, err := login(s.C2STLS, s.Domain, "127.0.0.1", user, pw, "sync")
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	after := ""
	for page := 1; ; page++ {
		if page > 500 {
			return nil, nil, fmt.Errorf("archive never complete")
		}
		rsm := "<max>50</max>"
		if after != "" {
			rsm += "<after>" + after + "</after>"
		}
		id := fmt.Sprintf("mam%d", page)
		c.send(fmt.Sprintf("<iq type='set' id='%s'><query xmlns='%s' queryid='%s'><set xmlns='%s'>%s</set></query></iq>", id, nsMAM, id, nsRSM, rsm))
		fin, err := c.expect("the archive page "+id, 20*time.Second, func(e *elem) bool {
			if res := e.child(nsMAM, "result"); e.is(nsClient, "message") && res != nil {
				if fw := res.child(nsForward, "forwarded"); fw != nil {
					if m := fw.child(nsClient, "message"); m != nil {
						if b := m.child(nsClient, "body"); b != nil && strings.HasPrefix(b.Text, prefix) {
							mam = append(mam, b.Text)
						}
					}
				}
				return false
			}
			return e.is(nsClient, "iq") && e.attr("id") == id
		})
		if err != nil {
			return nil, nil, err
		}
		if fin.attr("type") != "result" {
			return nil, nil, fmt.Errorf("archive query refused: %v", fin)
		}
		f := fin.child(nsMAM, "fin")
		if f == nil {
			return nil, nil, fmt.Errorf("result without <fin/>: %v", fin)
		}
		if f.attr("complete") == "true" {
			break
		}
		set := f.child(nsRSM, "set")
		if set == nil || set.child(nsRSM, "last") == nil {
			return nil, nil, fmt.Errorf("incomplete page without <last/>: %v", fin)
		}
		after = set.child(nsRSM, "last").Text
	}
	c.send("<presence/>")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		e, err := c.next(2 * time.Second)
		if err == errTimeout {
			return mam, offline, nil
		}
		if err != nil {
			return mam, offline, err
		}
		if cond := streamErrorCondition(e); cond != "" {
			return mam, offline, fmt.Errorf("stream error %s", cond)
		}
		if e.is(nsClient, "message") {
			if b := e.child(nsClient, "body"); b != nil && strings.HasPrefix(b.Text, prefix) {
				offline = append(offline, b.Text)
			}
		}
	}
	return mam, offline, fmt.Errorf("messages still arriving after 20s")
}
