package main

import (
	"runtime/metrics"
	"testing"
	"time"
)

// TestGCPolicy: busy (allocating more than the live heap a second with a
// steady live heap) raises GOGC; a growing live heap (sessions logging in)
// does not, though it allocates as fast (the first version did, and idle
// sessions' RSS went from 14.4 to 21.9 KiB each) but releases the heap it
// grew once quiet; quiet for gcQuietFor after busy lowers it again and
// releases the heap.
func TestGCPolicy(t *testing.T) {
	const mib = 1 << 20
	sec := time.Second
	var s gcState

	// Logins: 50 MiB/s allocated while the live heap grows 16 → 20 MiB.
	if p, _ := s.step(50*mib, 16*mib, 20*mib, sec); p != 0 || s.busy {
		t.Fatalf("growing live heap: percent %d busy %v, want no change", p, s.busy)
	}
	// Quiet after it: the heap the burst grew is released after
	// gcQuietFor, GOGC untouched (issue 12: a burst of room joins left
	// ~1 KiB of free heap per occupant with the process).
	for waited := time.Duration(0); ; waited += sec / 2 {
		p, r := s.step(mib/8, 20*mib, 20*mib, sec/2)
		if p != 0 {
			t.Fatalf("quiet after a burst: percent %d, want no change", p)
		}
		if r {
			if waited+sec/2 < gcQuietFor {
				t.Fatalf("released after %v, before gcQuietFor", waited+sec/2)
			}
			break
		}
		if waited > 10*sec {
			t.Fatal("the heap a burst of logins grew was never released")
		}
	}
	// Idle: nothing changes.
	if p, r := s.step(1*mib, 20*mib, 20*mib, sec); p != 0 || r {
		t.Fatalf("idle: percent %d release %v", p, r)
	}
	// Saturation: 60 MiB/s with a steady 20 MiB live heap.
	if p, _ := s.step(60*mib, 20*mib, 20*mib, sec); p != gcBusyPercent {
		t.Fatalf("saturation: percent %d, want %d", p, gcBusyPercent)
	}
	if p, _ := s.step(60*mib, 20*mib, 20*mib, sec); p != 0 || !s.busy {
		t.Fatalf("still busy: percent %d busy %v", p, s.busy)
	}
	// Between the thresholds: stays busy however long.
	for range 10 {
		if p, _ := s.step(10*mib, 20*mib, 20*mib, sec); p != 0 || !s.busy {
			t.Fatalf("moderate load: percent %d busy %v", p, s.busy)
		}
	}
	// Quiet: lowered (and released) after gcQuietFor, not before.
	var got int
	var released bool
	var waited time.Duration
	for waited = 0; got == 0 && waited < 10*sec; waited += sec / 2 {
		got, released = s.step(mib/2, 20*mib, 20*mib, sec/2)
	}
	if got != gcQuietPercent || !released || waited < gcQuietFor {
		t.Fatalf("quiet: percent %d release %v after %v, want %d, true after %v", got, released, waited, gcQuietPercent, gcQuietFor)
	}
	// A tiny heap is judged against the runtime's 4 MiB floor: 3 MiB/s
	// on a 1 MiB heap is not busy.
	if p, _ := s.step(3*mib, 1*mib, 1*mib, sec); p != 0 {
		t.Fatalf("tiny heap: percent %d", p)
	}
}

// TestGCPolicyLooksAfterCollection: a collection schedules one more look a
// window later even when the server is neither busy nor in a burst, so
// that a burst shorter than a window is judged over the window it
// happened in (the first version looked again only while busy: a 0.3 s
// burst of room joins after idle minutes was judged over those minutes
// and its heap never released); and that look does not schedule
// another, so an idle server gets no timer wake-ups.
func TestGCPolicyLooksAfterCollection(t *testing.T) {
	p := &gcPolicy{samples: []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}}
	p.alloc0, p.live0 = p.read()
	p.t0 = time.Now()
	start := p.t0
	p.check(true)
	p.mu.Lock()
	ticking := p.ticking
	p.mu.Unlock()
	if !ticking {
		t.Fatal("no look scheduled after a collection")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		ticking, t0 := p.ticking, p.t0
		p.mu.Unlock()
		if !ticking {
			if !t0.After(start) {
				t.Fatal("the scheduled look did not close the window")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scheduled look never ran")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, bounded above
	}
	p.mu.Lock()
	again, busy := p.ticking, p.s.busy || p.s.burst
	p.mu.Unlock()
	if busy {
		t.Skip("the test process itself allocated like a burst; nothing more to check")
	}
	if again {
		t.Error("a look without a collection scheduled another on a quiet server")
	}
}
