//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDurability kills the server with SIGKILL while a client sends
// numbered messages to an offline account, restarts it, and checks that the
// recipient gets every message the server had acknowledged, exactly once.
//
// "Acknowledged" is XEP-0198 stream management when the server offers
// urn:xmpp:sm:3: the client asks <r/> after every message and the server's
// <a h='N'/> covers the first N (the design promises <a/> only after the
// storage commit). Without stream management, every message is followed by
// an iq ping, and a message counts as acknowledged when the ping after it was
// answered: the server handles a session's stanzas in order. The log says
// which was used.
func TestDurability(t *testing.T) {
	t.Parallel()
	const (
		rounds = 8
		// One sender may fill only its share of one recipient's offline
		// storage (offline.MaxMessages / offline.SenderShare = 250); more
		// is bounced by design, which this test would count as loss. So
		// the writer sends round-robin to several readers: up to 3,000
		// messages a round, enough that the kill (50 ms–1.5 s) comes
		// while messages are in flight, yet bounded.
		readers     = 12
		maxMessages = readers * 250
	)
	s := startServer(t, serverOpts{})
	sendPw, rcptPw := randomPassword(t), randomPassword(t)
	s.AddUser(t, "writer", sendPw)
	rcpts := make([]string, readers)
	for i := range rcpts {
		rcpts[i] = s.AddUser(t, fmt.Sprintf("reader%d", i+1), rcptPw)
	}

	seen := map[string]int{} // every id received in any round → round
	totalAcked, totalSent := 0, 0
	for round := 1; round <= rounds; round++ {
		start := time.Now()
		res := sendUntilKilled(t, s, round, sendPw, rcpts, maxMessages)
		totalAcked += res.acked
		totalSent += res.sent
		t.Logf("round %d: %s; sent %d, acknowledged %d, killed after %v", round, res.mode, res.sent, res.acked, res.killedAfter)

		s.Start(t)
		perReader := make([][]string, readers)
		errs := make([]error, readers)
		var wg sync.WaitGroup
		for i := range readers {
			wg.Go(func() { perReader[i], errs[i] = drainOffline(s, fmt.Sprintf("reader%d", i+1), rcptPw) })
		}
		wg.Wait()
		var got []string
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: reader%d could not collect its messages after the restart: %v", round, i+1, err)
			}
			got = append(got, perReader[i]...)
		}
		// Check: each acknowledged id once, nothing twice, nothing unsent,
		// order kept (per reader: each gets every 12th message).
		prefix := fmt.Sprintf("r%d-", round)
		count := map[int]int{}
		var order []string
		for _, bodies := range perReader {
			last := 0
			for _, body := range bodies {
				if r, ok := seen[body]; ok {
					t.Errorf("round %d: %q delivered again (first delivered in round %d)", round, body, r)
					continue
				}
				if !strings.HasPrefix(body, prefix) {
					t.Errorf("round %d: unexpected message %q (not from this round)", round, body)
					continue
				}
				n, err := strconv.Atoi(strings.TrimPrefix(body, prefix+"m"))
				if err != nil || n < 1 || n > res.sent {
					t.Errorf("round %d: message %q was never sent (sent m1…m%d)", round, body, res.sent)
					continue
				}
				count[n]++
				if n < last {
					order = append(order, fmt.Sprintf("m%d after m%d", n, last))
				}
				last = n
			}
		}
		for _, body := range got {
			if _, ok := seen[body]; !ok {
				seen[body] = round
			}
		}
		var lost, dup []int
		for n := 1; n <= res.acked; n++ {
			if count[n] == 0 {
				lost = append(lost, n)
			}
		}
		for n, c := range count {
			if c > 1 {
				dup = append(dup, n)
			}
		}
		sort.Ints(dup)
		if len(lost) > 0 {
			t.Errorf("round %d: %d acknowledged messages lost after SIGKILL: %s (acknowledged m1…m%d, received %d)",
				round, len(lost), ranges(lost), res.acked, len(got))
		}
		if len(dup) > 0 {
			t.Errorf("round %d: messages delivered more than once: %s", round, ranges(dup))
		}
		if len(order) > 0 {
			t.Errorf("round %d: offline messages out of order: %s", round, strings.Join(order[:min(5, len(order))], ", "))
		}
		t.Logf("round %d: recipient got %d messages (%d acknowledged, %d sent) in %v total",
			round, len(got), res.acked, res.sent, time.Since(start).Round(time.Millisecond))
		if t.Failed() {
			break
		}
	}
	t.Logf("all rounds: %d sent, %d acknowledged", totalSent, totalAcked)
	if totalAcked == 0 {
		t.Errorf("no message was ever acknowledged in %d rounds: the test proved nothing", rounds)
	}
}

// TestShutdown: SIGTERM gives connected clients the system-shutdown stream
// error, the process exits 0, and what was stored is there after a restart.
func TestShutdown(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	pw, rpw := randomPassword(t), randomPassword(t)
	s.AddUser(t, "leaver", pw)
	rcpt := s.AddUser(t, "stayer", rpw)
	c, err := login(s.C2STLS, s.Domain, nextSource(), "leaver", pw, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One message to the offline account, stored before the shutdown.
	c.send(fmt.Sprintf("<message to='%s' type='chat'><body>before shutdown</body></message>", rcpt))
	c.send(fmt.Sprintf("<message to='%s' type='chat'><body>barrier</body></message>", c.JID))
	if _, err := c.expect("own barrier message", 5*time.Second, func(e *elem) bool { return e.is(nsClient, "message") }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.Stop(t)
	if err := expectStreamError(c, "system-shutdown", 5*time.Second); err != nil {
		t.Errorf("on SIGTERM: %v", err)
	}
	if err := s.ExitErr(); err != nil {
		t.Errorf("after SIGTERM the server exited with %v, want status 0", err)
	}
	t.Logf("clean shutdown took %v", time.Since(start))
	s.Start(t)
	r, err := login(s.C2STLS, s.Domain, nextSource(), "stayer", rpw, "")
	if err != nil {
		t.Fatalf("login after restart: %v", err)
	}
	defer r.Close()
	r.send("<presence/>")
	if _, err := r.expect("the message stored before the shutdown", 10*time.Second, func(e *elem) bool {
		b := e.child(nsClient, "body")
		return e.is(nsClient, "message") && b != nil && b.Text == "before shutdown"
	}); err != nil {
		t.Error(err)
	}
}

type sendResult struct {
	mode        string
	sent, acked int
	killedAfter time.Duration
}

// sendUntilKilled logs in, sends numbered messages to rcpt as fast as the
// connection takes them, and SIGKILLs the server at a random moment.
func sendUntilKilled(t *testing.T, s *server, round int, pw string, rcpts []string, limit int) sendResult {
	t.Helper()
	c, err := login(s.C2STLS, s.Domain, "127.0.0.1", "writer", pw, "")
	if err != nil {
		t.Fatalf("round %d: writer login: %v", round, err)
	}
	defer c.Close()
	res := sendResult{mode: "iq ping after each message"}
	// HEARTH_E2E_DURABILITY_ACK=ping forces the ping mode even when the
	// server offers stream management (to check that mode itself).
	useSM := c.Features.child(nsSM, "sm") != nil && os.Getenv("HEARTH_E2E_DURABILITY_ACK") != "ping"
	if useSM {
		c.send("<enable xmlns='urn:xmpp:sm:3'/>")
		if _, err := c.expect("<enabled/>", 5*time.Second, func(e *elem) bool { return e.is(nsSM, "enabled") }); err != nil {
			t.Fatalf("round %d: stream management offered but enabling failed: %v", round, err)
		}
		res.mode = "XEP-0198 <a h=…/>"
	}

	var mu sync.Mutex
	acked, sent := 0, 0
	bounced, firstBounce := 0, "" // message errors: the server refused to store
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for e := range c.events {
			switch {
			case e.is(nsClient, "message") && e.attr("type") == "error":
				mu.Lock()
				if bounced++; firstBounce == "" {
					firstBounce = e.String()
				}
				mu.Unlock()
			case useSM && e.is(nsSM, "a"):
				if h, err := strconv.Atoi(e.attr("h")); err == nil {
					mu.Lock()
					acked = max(acked, h)
					mu.Unlock()
				}
			case useSM && e.is(nsSM, "r"):
				c.send("<a xmlns='urn:xmpp:sm:3' h='0'/>")
			case !useSM && e.is(nsClient, "iq") && strings.HasPrefix(e.attr("id"), "p"):
				if e.attr("type") != "result" {
					continue
				}
				if n, err := strconv.Atoi(e.attr("id")[1:]); err == nil {
					mu.Lock()
					acked = max(acked, n)
					mu.Unlock()
				}
			}
		}
	}()

	// The kill comes at a random moment between 50 ms and 1.5 s.
	killAt := time.Duration(50+rand.IntN(1450)) * time.Millisecond
	killed := make(chan struct{})
	go func() {
		time.Sleep(killAt)
		s.Kill(t)
		close(killed)
	}()
	for i := 1; i <= limit; i++ {
		msg := fmt.Sprintf("<message to='%s' type='chat' id='r%dm%d'><body>r%d-m%d</body></message>", rcpts[(i-1)%len(rcpts)], round, i, round, i)
		if useSM {
			msg += "<r xmlns='urn:xmpp:sm:3'/>"
		} else {
			msg += fmt.Sprintf("<iq type='get' id='p%d' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>", i, s.Domain)
		}
		if err := c.send(msg); err != nil {
			break
		}
		mu.Lock()
		sent = i
		mu.Unlock()
	}
	<-killed
	res.killedAfter = killAt
	c.Close()
	<-readerDone
	mu.Lock()
	defer mu.Unlock()
	res.sent, res.acked = sent, acked
	if bounced > 0 {
		t.Errorf("round %d: the server bounced %d messages to the offline account instead of storing them; first: %s", round, bounced, firstBounce)
	}
	if acked > sent {
		t.Fatalf("round %d: server acknowledged %d messages but only %d were sent", round, acked, sent)
	}
	return res
}

var bodyRE = regexp.MustCompile(`^r\d+-m\d+$`)

// drainOffline logs the recipient in, goes available and collects message
// bodies until the stream is quiet for 2 s (at most 20 s).
func drainOffline(s *server, user, pw string) ([]string, error) {
	c, err := login(s.C2STLS, s.Domain, "127.0.0.1", user, pw, "")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.send("<presence/>")
	var bodies []string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		e, err := c.next(2 * time.Second)
		if err == errTimeout {
			return bodies, nil
		}
		if err != nil {
			return bodies, err
		}
		if cond := streamErrorCondition(e); cond != "" {
			return bodies, fmt.Errorf("stream error %s", cond)
		}
		if e.is(nsClient, "message") {
			if b := e.child(nsClient, "body"); b != nil && bodyRE.MatchString(b.Text) {
				bodies = append(bodies, b.Text)
			}
		}
	}
	return bodies, fmt.Errorf("messages still arriving after 20s (%d so far)", len(bodies))
}

// ranges prints sorted ints compactly: 1-5, 9, 12-13.
func ranges(ns []int) string {
	var parts []string
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, strconv.Itoa(ns[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ns[i], ns[j]))
		}
		i = j + 1
	}
	if len(parts) > 30 {
		parts = append(parts[:30], "…")
	}
	return strings.Join(parts, ", ")
}
