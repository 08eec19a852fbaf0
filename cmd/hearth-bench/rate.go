package main

import (
	"bytes"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// lateAfter is when a delivered message counts as a failure: at a club's
// load a chat message a second late is a message that did not work.
const lateAfter = time.Second

// drainLimit is how long after the last send a message may still arrive
// before it counts as lost.
const drainLimit = 5 * time.Second

// rateResult is one fixed-rate run.
type rateResult struct {
	rate   int
	window time.Duration
	// counted messages (sent after the warm-up), and what became of them
	sent, delivered, late, lost, bounced int64
	p50, p99, p999, max                  time.Duration
	// server cost over the counted window
	cpuNS    int64 // on-CPU time from schedstat, ns
	cpuTicks int64 // utime+stime, clock ticks (cross-check)
	ctxsw    int64
	// run-queue waits (other load on the machine)
	serverWait, genWait time.Duration
	// fsync-family calls over the window (countSyncs; -1: not counted,
	// syncErr says why) and write_bytes of the tree over it: issue 13's
	// fsyncs/s and disk bytes per archived message at 1000 msg/s
	fsyncs     int64
	syncErr    string
	writeBytes int64
}

// syncsPerSec and bytesPerMsg format the sync and disk figures ("n/a"
// when perf could not count).
func (r rateResult) syncsPerSec() (float64, bool) {
	return float64(r.fsyncs) / r.window.Seconds(), r.fsyncs >= 0 && r.window > 0
}

func (r rateResult) bytesPerMsg() float64 {
	return float64(r.writeBytes) / float64(max(r.sent, 1))
}

func (r rateResult) failures() int64 { return r.late + r.lost + r.bounced }

// usPerMsg is server CPU per counted message in µs.
func (r rateResult) usPerMsg() float64 {
	if r.sent == 0 {
		return 0
	}
	return float64(r.cpuNS) / 1e3 / float64(r.sent)
}

func (r rateResult) wakesPerMsg() float64 {
	if r.sent == 0 {
		return 0
	}
	return float64(r.ctxsw) / float64(r.sent)
}

// fixedRate sends `rate` messages per second in total, round-robin over
// the pairs, for warm+window, and follows every message sent after the
// warm-up. The schedule is fixed in advance: message k is due at
// start+k/rate and carries that due time in its body, and latency is
// measured from it. A server that stalls therefore cannot hide its stall
// by slowing the sender down (coordinated omission): whatever waited
// behind it is sent late, and its latency includes the wait.
func fixedRate(pid int, senders, receivers []*session, rate int, warm, window time.Duration) rateResult {
	total := int64(float64(rate) * (warm + window).Seconds())
	first := int64(float64(rate) * warm.Seconds()) // first counted message
	lat := make([]int64, 0, total-first)
	var mu sync.Mutex
	var bounced atomic.Int64
	got := make([]bool, total) // by message number, against duplicates
	start := time.Now()
	for i := range receivers {
		f := func(b []byte) {
			now := time.Now().UnixNano()
			ts, ok := bodyTS(b)
			k, ok2 := msgID(b)
			// Stragglers of an earlier phase carry older stamps.
			if !ok || !ok2 || k < first || k >= total || ts < start.UnixNano() {
				return
			}
			mu.Lock()
			if !got[k] {
				got[k] = true
				lat = append(lat, now-ts)
			}
			mu.Unlock()
		}
		receivers[i].onMsg.Store(&f)
		g := func(b []byte) {
			if isError(b) {
				bounced.Add(1)
			}
		}
		senders[i].onMsg.Store(&g)
	}
	defer func() {
		for i := range receivers {
			receivers[i].onMsg.Store(nil)
			senders[i].onMsg.Store(nil)
		}
	}()

	var s0, s1, g0, g1 sample
	fsyncs, syncErr := int64(-1), error(nil)
	perfDone := make(chan struct{})
	step := float64(time.Second) / float64(rate)
	var buf []byte
	for k := int64(0); k < total; k++ {
		due := start.Add(time.Duration(float64(k) * step))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if k == first {
			s0, g0 = measure(pid), measure(os.Getpid())
			// perf runs beside the schedule for the counted window.
			go func() {
				defer close(perfDone)
				fsyncs, syncErr = countSyncs(tree(pid), window)
			}()
		}
		p := int(k % int64(len(senders)))
		buf = appendMsgAt(buf[:0], receivers[p].c.JID(), k, due.UnixNano())
		senders[p].c.Send(buf)
	}
	// The cost window ends when the schedule does, not when the last
	// straggler arrives: what is still in flight then balances what was
	// in flight at its start.
	if d := time.Until(start.Add(warm + window)); d > 0 {
		time.Sleep(d)
	}
	s1, g1 = measure(pid), measure(os.Getpid())
	if first < total {
		<-perfDone
	}

	r := rateResult{rate: rate, window: window, sent: total - first,
		cpuNS: s1.cpuNS - s0.cpuNS, cpuTicks: s1.cpuTicks - s0.cpuTicks, ctxsw: s1.ctxsw - s0.ctxsw,
		serverWait: time.Duration(s1.runDelay - s0.runDelay), genWait: time.Duration(g1.runDelay - g0.runDelay),
		fsyncs: fsyncs, writeBytes: s1.writeBytes - s0.writeBytes}
	if syncErr != nil {
		r.fsyncs, r.syncErr = -1, syncErr.Error()
	}
	for deadline := time.Now().Add(drainLimit); time.Now().Before(deadline); {
		mu.Lock()
		n := int64(len(lat))
		mu.Unlock()
		if n >= r.sent {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	r.delivered = int64(len(lat))
	r.lost = r.sent - r.delivered
	r.bounced = bounced.Load()
	if len(lat) == 0 {
		return r
	}
	slices.Sort(lat)
	for _, l := range lat {
		if time.Duration(l) > lateAfter {
			r.late++
		}
	}
	pct := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(lat)))) - 1
		return time.Duration(lat[max(i, 0)])
	}
	r.p50, r.p99, r.p999, r.max = pct(0.50), pct(0.99), pct(0.999), time.Duration(lat[len(lat)-1])
	return r
}

// msgID is the number in a message's id='mN'.
func msgID(b []byte) (int64, bool) {
	i := bytes.Index(b, []byte("id='m"))
	q := byte('\'')
	if i < 0 {
		i = bytes.Index(b, []byte(`id="m`))
		q = '"'
	}
	if i < 0 {
		return 0, false
	}
	rest := b[i+5:]
	j := bytes.IndexByte(rest, q)
	if j <= 0 {
		return 0, false
	}
	var n int64
	for _, c := range rest[:j] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isError(b []byte) bool {
	return bytes.Contains(b, []byte("type='error'")) || bytes.Contains(b, []byte(`type="error"`))
}
