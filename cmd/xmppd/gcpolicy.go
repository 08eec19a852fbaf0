package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// The garbage collector's policy: memory is spent on headroom only while
// the server is busy.
//
// GOGC=25 keeps an idle session at ~14.6 KiB of RSS instead of 22.7 (the
// figure a Pi is bought on, see main), but at saturation with the message
// archive on, garbage collection at GOGC=25 was ~24% of the server's CPU
// (issue 13's benchmark: 52.8k messages per server CPU-second at GOGC=25,
// 70.6k at GOGC=100 on the same VM). Busy is measured against the live
// heap, not in absolute bytes: at GOGC=25 the collector runs once per
// quarter of the live heap allocated, so a server allocating more than its
// live heap a second collects four or more times a second. Such a server
// gets gcBusyPercent, unless its live heap is growing: sessions logging in
// (a first version raised GOGC for 1,000 logins too, and the sessions'
// long-lived objects, spread over a heap twice the size, kept idle RSS at
// 21.9 KiB a session instead of 14.4: hearth-bench, N=1000). Once it
// allocates less than a quarter of its live heap a second (or its live
// heap grows) for gcQuietFor, it gets gcQuietPercent again and gives the
// heap the busy spell grew back to the kernel at once (the scavenger would
// take minutes).
//
// The policy looks at the heap when the collector has run (a finalizer
// re-armed every cycle), a window after that, and, while busy, once a
// second: an idle server gets no timer wake-ups from it beyond one after
// each collection (a 1 s ticker raised hearth-bench's idle wake-ups from
// 0.5 to 5.3 a second).
const (
	gcQuietPercent = 25
	gcBusyPercent  = 100
	gcBusyRate     = 1.0  // allocated bytes per live byte per second: busy at or above
	gcQuietRate    = 0.25 // quiet below, for gcQuietFor
	gcMaxGrowth    = 0.05 // live heap growth per second above which it is not busy
	gcQuietFor     = 2 * time.Second
	gcWindow       = time.Second // shortest time a decision is made over
)

// gcState is the policy's decision logic, apart from the runtime so that
// it can be tested.
type gcState struct {
	busy bool
	// burst: a window allocated at the busy rate while the live heap grew
	// (logins, a burst of room joins), which leaves GOGC alone but grows
	// the heap: its free pages are given back once it is quiet, as after
	// a busy spell. Without this the heap a join burst grew stayed with
	// the process (the scavenger keeps ~10% over the heap goal): about
	// 1 KiB of RssAnon per idle room occupant of the 2 KiB issue 12
	// allows (hearth-bench idle occupants, N=1000).
	burst     bool
	quietTime time.Duration // how long it has not looked busy while busy (or quiet after a burst)
}

// step takes one window (bytes allocated in dt, the live heap at its start
// and end) and returns the GC percent to set (0: leave it) and whether the
// heap should be returned to the kernel.
func (s *gcState) step(allocated, live0, live uint64, dt time.Duration) (percent int, release bool) {
	if dt <= 0 {
		return 0, false
	}
	floor := func(l uint64) float64 { return float64(max(l, 4<<20)) } // the runtime's own 4 MiB floor
	rate := float64(allocated) / floor(live) / dt.Seconds()
	growth := (float64(live) - float64(live0)) / floor(live0) / dt.Seconds()
	if rate >= gcBusyRate {
		s.burst = true
	}
	switch {
	case rate >= gcBusyRate && growth < gcMaxGrowth:
		s.quietTime = 0
		if !s.busy {
			s.busy = true
			return gcBusyPercent, false
		}
	case s.busy && (rate < gcQuietRate || growth >= gcMaxGrowth):
		s.quietTime += dt
		if s.quietTime >= gcQuietFor {
			s.busy, s.burst = false, false
			s.quietTime = 0
			return gcQuietPercent, true
		}
	case s.busy:
		s.quietTime = 0
	case s.burst && rate < gcQuietRate:
		s.quietTime += dt
		if s.quietTime >= gcQuietFor {
			s.burst = false
			s.quietTime = 0
			return 0, true
		}
	case s.burst:
		s.quietTime = 0
	}
	return 0, false
}

// gcPolicy feeds the runtime's figures to a gcState.
type gcPolicy struct {
	mu      sync.Mutex
	s       gcState
	samples []metrics.Sample
	alloc0  uint64 // at the window's start
	live0   uint64
	t0      time.Time
	ticking bool // a busy check is scheduled
}

func (p *gcPolicy) read() (alloc, live uint64) {
	metrics.Read(p.samples)
	return p.samples[0].Value.Uint64(), p.samples[1].Value.Uint64()
}

// check closes the window if it is long enough and applies the decision.
// afterGC: called because the collector ran. A window is closed at the
// next check a second or more after it opened; after a collection one
// more check is scheduled a window later, so that a burst shorter than a
// window (500 room joins take ~0.3 s) is judged over the window it
// happened in, not over the idle minutes before it (which hid it: the
// window an idle server closes at a burst's first collection began at
// the previous one), and so that its quiet end is seen without waiting
// for another collection.
func (p *gcPolicy) check(afterGC bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if dt := now.Sub(p.t0); dt >= gcWindow {
		alloc, live := p.read()
		percent, release := p.s.step(alloc-p.alloc0, p.live0, live, dt)
		p.alloc0, p.live0, p.t0 = alloc, live, now
		if percent != 0 {
			debug.SetGCPercent(percent)
		}
		if release {
			go releaseHeap() // collections: not under p.mu
		}
	}
	if (afterGC || p.s.busy || p.s.burst) && !p.ticking {
		p.ticking = true
		time.AfterFunc(gcWindow, func() {
			p.mu.Lock()
			p.ticking = false
			p.mu.Unlock()
			p.check(false)
		})
	}
}

// releaseHeap gives the kernel the heap's free pages. Two collections:
// the first moves what sync.Pools hold (the sessions' write buffers a
// burst of presences grew, ~0.4 MB after 1,000 room joins) to their
// victim caches, the second (FreeOSMemory's) frees it, so that those
// pages go back too.
func releaseHeap() {
	runtime.GC()
	debug.FreeOSMemory()
}

// gcSentinel holds a pointer so that it is never one of the tiny
// allocator's blocks (whose finalizers may never run).
type gcSentinel struct{ _ *gcSentinel }

// startGCPolicy sets GOGC=25 and runs the policy, unless GOGC is in the
// environment (which wins, as before: benchmarks compare fixed settings).
func startGCPolicy() {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(gcQuietPercent)
	p := &gcPolicy{samples: []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}}
	p.alloc0, p.live0 = p.read()
	p.t0 = time.Now()
	// A sentinel that the collector finds unreachable every cycle: its
	// finalizer runs once per cycle and re-arms itself.
	var arm func()
	arm = func() {
		runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
			go p.check(true) // off the finalizer goroutine: other finalizers wait otherwise
			arm()
		})
	}
	arm()
}
