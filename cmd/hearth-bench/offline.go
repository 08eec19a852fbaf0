package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// offlineResult is the offline path: messages to members who are not
// logged in, which every server must put in storage.
type offlineResult struct {
	window  time.Duration
	stored  int64 // messages the server had handled when it answered the barrier ping
	bounced int64
	stalled int64 // senders whose barrier ping got no answer within 10 s
	capped  int64 // senders that reached offlinePerSender while counting
	// fsyncs counts fsync+fdatasync+sync_file_range+msync calls of the
	// server's threads (perf's syscall tracepoints); -1: not measured.
	fsyncs     int64
	fsyncErr   string
	writeBytes int64 // /proc/PID/io write_bytes (bytes the kernel sent to the disk for it)
	cpuNS      int64
}

// offlineBatch is how many messages a sender writes before its barrier.
const offlineBatch = 16

// offlinePerSender caps what one sender writes in the phase. xmppd bounds
// what one member may have waiting in offline storage across all
// recipients (2000 messages, xmppd/mod/offline/quota.go) and bounces the
// rest with resource-constraint, as designed; a full run's 50 senders hit
// that after about 15 s and 5702 of their messages bounced, which
// measured the limit, not the storage path. Prosody and ejabberd have no
// such limit; every server gets the same cap.
const offlinePerSender = 1500

// offline has every sender write batches of messages to accounts that are
// not logged in (round-robin over recipients, so no recipient nears a
// per-recipient quota), each batch followed by an XEP-0199 ping to the
// server. Every server handles a connection's stanzas in order, so the pong
// means the batch went through the offline path (stored or bounced); it
// does not prove the batch is on disk, which is what the fsync count is for.
func offline(pid int, senders []*session, domain string, recipients []string, warm, window time.Duration) offlineResult {
	var stored, bounced, stalled, capped, next atomic.Int64
	var counting atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for si, s := range senders {
		pong := make(chan struct{}, 1)
		id := "bar" + strconv.Itoa(si)
		fi := func(b []byte) {
			if bytes.Contains(b, []byte("'"+id+"'")) || bytes.Contains(b, []byte(`"`+id+`"`)) {
				select {
				case pong <- struct{}{}:
				default:
				}
			}
		}
		fm := func(b []byte) {
			if isError(b) && counting.Load() {
				bounced.Add(1)
			}
		}
		s.onIQ.Store(&fi)
		s.onMsg.Store(&fm)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			sent := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				if sent >= offlinePerSender {
					if counting.Load() {
						capped.Add(1)
					}
					return
				}
				sent += offlineBatch
				buf = buf[:0]
				for k := 0; k < offlineBatch; k++ {
					n := next.Add(1)
					buf = appendMsg(buf, recipients[int(n)%len(recipients)], n)
				}
				buf = append(buf, "<iq type='get' id='"+id+"' to='"+domain+"'><ping xmlns='urn:xmpp:ping'/></iq>"...)
				wasCounting := counting.Load()
				if s.c.Send(buf) != nil {
					return
				}
				select {
				case <-pong:
					if wasCounting && counting.Load() {
						stored.Add(offlineBatch)
					}
				case <-time.After(10 * time.Second):
					stalled.Add(1)
					return
				case <-stop:
					return
				}
			}
		}()
	}
	time.Sleep(warm)
	s0 := measure(pid)
	counting.Store(true)
	t0 := time.Now()
	fsyncs, ferr := countSyncs(tree(pid), window)
	counting.Store(false)
	el := time.Since(t0)
	s1 := measure(pid)
	close(stop)
	wg.Wait()
	for _, s := range senders {
		s.onIQ.Store(nil)
		s.onMsg.Store(nil)
	}
	r := offlineResult{window: el, stored: stored.Load(), bounced: bounced.Load(), stalled: stalled.Load(), capped: capped.Load(),
		fsyncs: fsyncs, writeBytes: s1.writeBytes - s0.writeBytes, cpuNS: s1.cpuNS - s0.cpuNS}
	if ferr != nil {
		r.fsyncs, r.fsyncErr = -1, ferr.Error()
	}
	return r
}

// syncCalls are the system calls that ask for data to reach the disk.
var syncCalls = []string{"fsync", "fdatasync", "sync_file_range", "msync"}

// countSyncs counts the sync system calls of pids (and threads they
// start) for d, with perf's syscall tracepoints. strace would stop the
// server at every system call; a tracepoint counter costs next to nothing.
// Without perf it sleeps d and returns an error.
func countSyncs(pids []int, d time.Duration) (int64, error) {
	if _, err := exec.LookPath("perf"); err != nil {
		time.Sleep(d)
		return 0, fmt.Errorf("perf not installed (Debian: linux-perf)")
	}
	var ev, ps []string
	for _, c := range syncCalls {
		ev = append(ev, "syscalls:sys_enter_"+c)
	}
	for _, p := range pids {
		ps = append(ps, strconv.Itoa(p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "perf", "stat", "-x", ",", "-e", strings.Join(ev, ","),
		"-p", strings.Join(ps, ","), "--", "sleep", fmt.Sprintf("%.3f", d.Seconds()))
	out, err := cmd.CombinedOutput()
	if err != nil {
		if rest := d - time.Since(start); rest > 0 {
			time.Sleep(rest)
		}
		return 0, fmt.Errorf("perf stat: %v: %s", err, bytes.TrimSpace(out))
	}
	var n int64
	found := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 || !strings.HasPrefix(f[2], "syscalls:sys_enter_") {
			continue
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("perf stat: %s", line)
		}
		n += v
		found++
	}
	if found != len(syncCalls) {
		return 0, fmt.Errorf("perf stat: %d of %d counters in %q", found, len(syncCalls), out)
	}
	return n, nil
}
