package s2s_test

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/s2s"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// The package's default caps (Config.defaults): the figures this test
// holds the queue to. A change of the defaults must change them here.
const (
	defaultMaxQueue      = 1000
	defaultMaxQueueBytes = 1 << 20
)

// TestDeadDomainTenThousand is issue 14's fault "10,000 messages to a dead
// domain": one member sends 10,000 messages to dead.test, whose server
// refuses every connection, with the package's default caps. Every message
// comes back to her exactly once, with the errors the package doc
// specifies: the first MaxQueue (1,000) wait and bounce with
// remote-server-timeout once the retry time is over, the 9,000 beyond the
// cap bounce at once with resource-constraint. The queue never holds more
// than its caps; the live heap with the queue full grew by less than its
// byte cap (MaxQueueBytes), and 9,000 more messages add nothing to it (the
// memory does not grow with the count); meanwhile another member's
// messages, to a local account and to a live domain (b.test), each arrive
// within a second.
//
// Only the retry time bound is shortened (Config.RetryFor 10 s instead of
// 5 min): with the default back-off (2 s, doubling) the queue gives up
// after its attempts at 0, 2 and 6 s, when the next (at 14 s) would be
// beyond RetryFor. (world.start lifts c2s's read rate for its members, as
// for every test here: the caps under test are s2s's.)
func TestDeadDomainTenThousand(t *testing.T) {
	const (
		total    = 10000
		warm     = defaultMaxQueue
		retryFor = 10 * time.Second
		prompt   = time.Second // the other member's messages' bound
	)
	w := newWorld(t)
	w.deadDomain(t, "dead.test")
	a := w.start(t, "a.test", nil, func(c *s2s.Config) { c.RetryFor = retryFor })
	b := w.start(t, "b.test", nil, nil)
	if err := a.d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	alice, bob, carol, far := a.login(t, "alice"), a.login(t, "bob"), a.login(t, "carol"), b.login(t, "bob")

	// The other member's probes: one message to carol (local) and one to
	// bob@b.test (live domain) at a time, each awaited before the next.
	// The first round also brings the link to b.test up, before the flood.
	type probeResult struct {
		n     int
		worst time.Duration
		err   error
	}
	seq := 0
	probe := func(to string, rcv *xmpptest.Client) (time.Duration, error) {
		seq++
		body := "probe " + strconv.Itoa(seq)
		start := time.Now()
		bob.C.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(bob.C, "<message to='%s' type='chat'><body>%s</body></message>", to, body); err != nil {
			return 0, fmt.Errorf("bob's probe to %s: %w", to, err)
		}
		for range 100 {
			ev, err := rcv.Next()
			if err != nil {
				return 0, fmt.Errorf("%s waiting for %q: %w", to, body, err)
			}
			if ev.Kind == stream.Stanza && ev.El.Local == "message" && ev.El.ChildText(stream.NSClient, "body") == body {
				return time.Since(start), nil
			}
		}
		return 0, fmt.Errorf("%s: no %q among 100 stanzas", to, body)
	}
	probeRound := func() (time.Duration, error) {
		var worst time.Duration
		for _, p := range []struct {
			to  string
			rcv *xmpptest.Client
		}{{"carol@a.test", carol}, {"bob@b.test", far}} {
			d, err := probe(p.to, p.rcv)
			if err != nil {
				return 0, err
			}
			worst = max(worst, d)
		}
		return worst, nil
	}
	if _, err := probeRound(); err != nil {
		t.Fatal(err)
	}
	// The probes and the sampler below end when stopped, or (a failure
	// before) when the test ends.
	stopProbes, stopSampling := make(chan struct{}), make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopProbes); close(stopSampling) }) }
	t.Cleanup(stop)
	probes := make(chan probeResult, 1)
	go func() {
		var r probeResult
		defer func() { probes <- r }()
		for {
			select {
			case <-stopProbes:
				return
			case <-time.After(50 * time.Millisecond):
			}
			d, err := probeRound()
			if err != nil {
				r.err = err
				return
			}
			r.n++
			r.worst = max(r.worst, d)
		}
	}()

	// The queue's size, sampled all along.
	var peakMu sync.Mutex
	peakN, peakBytes := 0, 0
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			n, bytes := a.d.S2S().QueuedFor("a.test", "dead.test")
			peakMu.Lock()
			peakN, peakBytes = max(peakN, n), max(peakBytes, bytes)
			peakMu.Unlock()
			select {
			case <-stopSampling:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	// Alice's bounces, read as they come. What the test keeps of them is
	// allocated before the first measurement (the heap figures are the
	// server's): each message's condition, by number, as one of the
	// constants; anything else fails the test.
	var mu sync.Mutex
	cond := make([]string, total) // "": not bounced (yet)
	bounced := 0
	warmed, warmedN := make([]bool, warm), 0
	count := make(map[string]int, 4)
	var firstTimeout time.Time
	var prefsSet atomic.Bool
	readErr := make(chan error, 1)
	go func() {
		for {
			mu.Lock()
			done := bounced == total
			mu.Unlock()
			if done {
				readErr <- nil
				return
			}
			ev, err := alice.Next()
			if err != nil {
				readErr <- fmt.Errorf("alice, reading her bounces: %w", err)
				return
			}
			el := ev.El
			if ev.Kind == stream.Stanza && el.Local == "iq" && el.Get("id") == "prefs" {
				if el.Get("type") != "result" {
					readErr <- fmt.Errorf("setting the archive's preferences: %s", el)
					return
				}
				prefsSet.Store(true)
				continue
			}
			if ev.Kind != stream.Stanza || el.Local != "message" || el.Get("type") != "error" {
				continue
			}
			id, c := el.Get("id"), errCond(el)
			if w, err := strconv.Atoi(strings.TrimPrefix(id, "n")); err == nil && strings.HasPrefix(id, "n") && w >= 0 && w < warm {
				mu.Lock()
				dup := warmed[w]
				warmed[w] = true
				warmedN++
				mu.Unlock()
				if dup || c != "remote-server-not-found" {
					readErr <- fmt.Errorf("the warm-up's %s bounced with %q (twice: %v)", id, c, dup)
					return
				}
				continue
			}
			i, err := strconv.Atoi(strings.TrimPrefix(id, "d"))
			if err != nil || !strings.HasPrefix(id, "d") || i < 0 || i >= total {
				readErr <- fmt.Errorf("a bounce of something alice did not send: %s", el)
				return
			}
			switch c {
			case "remote-server-timeout":
				c = "remote-server-timeout"
			case "resource-constraint":
				c = "resource-constraint"
			default:
				readErr <- fmt.Errorf("%s bounced with %q: %s", id, c, el)
				return
			}
			mu.Lock()
			if prev := cond[i]; prev != "" {
				mu.Unlock()
				readErr <- fmt.Errorf("%s bounced twice (%s, %s)", id, prev, c)
				return
			}
			cond[i] = c
			bounced++
			count[c]++
			if c == "remote-server-timeout" && firstTimeout.IsZero() {
				firstTimeout = time.Now()
			}
			mu.Unlock()
		}
	}()
	counted := func(c string) int {
		mu.Lock()
		defer mu.Unlock()
		return count[c]
	}
	send := func(domain, prefix string, from, to int) {
		t.Helper()
		var sb strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&sb, "<message to='bob@%s' type='chat' id='%s%d'><body>message %d to a dead domain</body></message>", domain, prefix, i, i)
		}
		alice.C.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := alice.C.Write([]byte(sb.String())); err != nil {
			t.Fatalf("alice sending %d..%d: %v", from, to, err)
		}
	}
	waitFor := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		end := time.Now().Add(limit)
		for !ok() {
			if time.Now().After(end) {
				t.Fatalf("no %s within %v", what, limit)
			}
			select {
			case err := <-readErr:
				t.Fatalf("before %s: %v", what, err)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}

	// Her archive is not what this test measures: it keeps what she sends
	// (mod/mam), 10,000 records, bounced or not.
	alice.Send("<iq type='set' id='prefs'><prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never><jid>bob@dead.test</jid><jid>bob@nowhere.test</jid></never></prefs></iq>")
	waitFor("the archive's preferences", 5*time.Second, func() bool { return prefsSet.Load() })
	// A warm-up through the same paths (her reading, the queue, its store
	// records, the bounces) to a domain that does not exist: they bounce
	// at once (remote-server-not-found), and the buffers that keep their
	// high-water mark (read buffers, the store's batches) have it before
	// the first measurement, which is then the queue's.
	send("nowhere.test", "n", 0, warm)
	waitFor("the warm-up's bounces", 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return warmedN == warm })
	h0 := liveHeap()
	start := time.Now()
	send("dead.test", "d", 0, defaultMaxQueue)
	waitFor("full queue", 5*time.Second, func() bool { n, _ := a.d.S2S().QueuedFor("a.test", "dead.test"); return n == defaultMaxQueue })
	h1 := liveHeap()
	send("dead.test", "d", defaultMaxQueue, total)
	waitFor("bounces over the cap", 5*time.Second, func() bool { return counted("resource-constraint") >= total-defaultMaxQueue })
	h2 := liveHeap()
	if n, _ := a.d.S2S().QueuedFor("a.test", "dead.test"); n != defaultMaxQueue || counted("remote-server-timeout") != 0 {
		t.Fatalf("the queue gave up before the test measured it (%d queued, %d timed out after %v): RetryFor too short for this machine",
			n, counted("remote-server-timeout"), time.Since(start))
	}
	overCap := time.Since(start)
	select {
	case err := <-readErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(retryFor + 10*time.Second):
		mu.Lock()
		n := bounced
		mu.Unlock()
		t.Fatalf("after %v only %d of %d bounced", time.Since(start), n, total)
	}
	all := time.Since(start)
	stop()
	pr := <-probes
	<-sampled

	t.Logf("%d messages to a refused domain: %v (%v to the cap's %d bounces, all by %v, the retry's first at %v); live heap +%.0f KiB with the queue full (%d queued, at most %d bytes), +%.0f KiB after %d more",
		total, count, overCap.Round(time.Millisecond), total-defaultMaxQueue, all.Round(time.Millisecond), firstTimeout.Sub(start).Round(time.Millisecond),
		kib(h1-h0), peakN, peakBytes, kib(h2-h1), total-defaultMaxQueue)
	t.Logf("meanwhile %d probe rounds (carol@a.test, bob@b.test), slowest %v", pr.n, pr.worst.Round(time.Microsecond))

	if count["remote-server-timeout"] != defaultMaxQueue || count["resource-constraint"] != total-defaultMaxQueue {
		t.Errorf("bounces %v, want %d remote-server-timeout (the queue) and %d resource-constraint (over its cap)", count, defaultMaxQueue, total-defaultMaxQueue)
	}
	for i, c := range cond {
		if c == "" {
			t.Fatalf("d%d never bounced", i)
		}
	}
	// The queue gave up within its bound, after retrying (its first
	// attempt failed at once).
	if d := firstTimeout.Sub(start); d < 2*time.Second || d > retryFor {
		t.Errorf("the queued messages bounced after %v, want within [RetryMin 2 s, RetryFor %v]", d, retryFor)
	}
	if peakN > defaultMaxQueue || peakBytes > defaultMaxQueueBytes {
		t.Errorf("the queue held %d stanzas, %d bytes: over its caps (%d, %d)", peakN, peakBytes, defaultMaxQueue, defaultMaxQueueBytes)
	}
	// The full queue's live heap (what it holds of the stanzas, their
	// store records on the way) stays under its byte cap, and 9,000 more
	// messages leave nothing behind.
	if h1-h0 > defaultMaxQueueBytes {
		t.Errorf("live heap +%.0f KiB with %d queued (%d bytes counted): over the queue's cap of %d KiB", kib(h1-h0), defaultMaxQueue, peakBytes, defaultMaxQueueBytes/1024)
	}
	if d := kib(h2 - h1); d > 256 {
		t.Errorf("live heap +%.0f KiB after %d more messages bounced over the cap: memory grows with the count", d, total-defaultMaxQueue)
	}
	if pr.err != nil {
		t.Errorf("the other member's messages: %v", pr.err)
	}
	if pr.n < 10 || pr.worst > prompt {
		t.Errorf("the other member's messages: %d rounds, slowest %v (want ≥ 10, each within %v)", pr.n, pr.worst, prompt)
	}
	if n, bytes := a.d.S2S().Queued(); n != 0 || bytes != 0 {
		t.Errorf("after the bounces %d stanzas (%d bytes) still queued", n, bytes)
	}
}

// liveHeap is the heap in use after a full collection: the least of a few
// samples, as the server's other work (store commits, timers, the probes)
// holds a little for a moment now and then.
func liveHeap() int64 {
	least := int64(-1)
	for range 5 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if least < 0 || int64(m.HeapAlloc) < least {
			least = int64(m.HeapAlloc)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return least
}

func kib(n int64) float64 { return float64(n) / 1024 }
