package idle

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakyWait is epoll_wait as the poller sees it when things go wrong: the
// first call is interrupted by a signal, later calls poll for real (in
// short slices, so that the test can make the next one fail) until fail
// is set, then the wait fails with EBADF.
type flakyWait struct {
	calls atomic.Int64
	fail  atomic.Bool
}

func (f *flakyWait) wait(epfd int, ev []syscall.EpollEvent, _ int) (int, error) {
	if f.calls.Add(1) == 1 {
		return 0, syscall.EINTR
	}
	for !f.fail.Load() {
		n, err := syscall.EpollWait(epfd, ev, 20)
		if err == syscall.EINTR || (err == nil && n == 0) {
			continue
		}
		return n, err
	}
	return 0, syscall.EBADF
}

// An interrupted epoll_wait is retried; any other failure must not take
// the daemon down (it used to panic): every parked connection is woken so
// its reader can go back to a blocking read, and Park refuses from then on.
func TestPollerSurvivesWaitErrors(t *testing.T) {
	f := &flakyWait{}
	p, err := newPoller(f.wait)
	if err != nil {
		t.Fatal(err)
	}
	_, ln := setup(t)

	// EINTR: retried, wake-ups still arrive.
	a, aPeer := pair(t, ln)
	defer a.Close()
	defer aPeer.Close()
	wokeA := make(chan struct{})
	if err := p.Park(a, func() { close(wokeA) }); err != nil {
		t.Fatal(err)
	}
	aPeer.Write([]byte("x"))
	if !wokeWithin(wokeA, 5*time.Second) {
		t.Fatal("no wake-up after an interrupted epoll_wait")
	}
	if f.calls.Load() < 2 {
		t.Fatalf("epoll_wait called %d times, want a retry after EINTR", f.calls.Load())
	}

	// A hard failure: parked connections are woken, nothing panics.
	b, bPeer := pair(t, ln)
	defer b.Close()
	defer bPeer.Close()
	wokeB := make(chan struct{})
	if err := p.Park(b, func() { close(wokeB) }); err != nil {
		t.Fatal(err)
	}
	f.fail.Store(true)
	if !wokeWithin(wokeB, 5*time.Second) {
		t.Fatal("a parked connection was not woken when the poller failed")
	}
	c, cPeer := pair(t, ln)
	defer c.Close()
	defer cPeer.Close()
	if err := p.Park(c, func() {}); !errors.Is(err, ErrBroken) {
		t.Fatalf("Park after the poller failed: %v, want ErrBroken", err)
	}
	if w := p.Forget(b); w != nil {
		t.Fatal("Forget after the failure returned a wake that already ran")
	}
	// The woken reader's fallback: a blocking read works.
	b.SetNonblocking(false)
	bPeer.Write([]byte("y"))
	buf := make([]byte, 1)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := b.Read(buf); n != 1 || err != nil {
		t.Fatalf("blocking read after fallback: %d, %v", n, err)
	}
}
