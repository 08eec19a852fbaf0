package idle

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// Poller waits for many parked connections with one epoll instance, which
// is itself registered with the Go runtime's network poller: one goroutine
// parked there, no timers, no wake-ups while all is quiet.
//
// Why not a thread blocked in epoll_wait (as before): a goroutine in a
// blocking system call keeps its P until sysmon takes it back, so with
// the server pinned to one core (GOMAXPROCS=1) the reader it had just
// woken waited for sysmon (20 µs to 10 ms later), and sysmon, finding
// work to retake after every message, never backed off. perf at 500 msg/s
// put sysmon at 23% of xmppd's CPU and 3 of its 6–7 context switches per
// message, and p99 latency at 50 msg/s at 125 ms.
type Poller struct {
	epfd int
	// ep is epfd as a pollable file: reads wait in the runtime's poller.
	ep *os.File
	// wait is epoll_wait (called with a zero timeout); tests replace it
	// to make it fail.
	wait func(epfd int, events []syscall.EpollEvent, msec int) (int, error)

	// Idle workers that run wake functions (see run).
	wmu   sync.Mutex
	spare []chan func()

	mu     sync.Mutex
	parked map[int]func()
	// owner is the connection registered under each descriptor
	// (ONESHOT leaves a woken one registered but disarmed). Keyed by
	// owner, not just number: once a connection is closed its number is
	// reused, and a late Forget from the old owner must not unregister
	// the new one — that was a lost wake-up.
	owner map[int]*Conn
	// broken is set once epoll_wait has failed for good: nothing is
	// parked any more (see fail).
	broken error
}

// ErrBroken wraps the epoll_wait failure that stopped the poller; Park
// returns it from then on, so callers read with a goroutine per connection.
var ErrBroken = errors.New("idle: poller stopped")

// NewPoller starts a poller.
func NewPoller() (*Poller, error) {
	return newPoller(epollPoll)
}

func newPoller(wait func(int, []syscall.EpollEvent, int) (int, error)) (*Poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("idle: epoll: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it with the runtime's
	// poller (an epoll descriptor is readable while events wait in it).
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("idle: epoll: %w", err)
	}
	p := &Poller{epfd: fd, ep: os.NewFile(uintptr(fd), "idle-epoll"), wait: wait,
		parked: map[int]func(){}, owner: map[int]*Conn{}}
	rc, err := p.ep.SyscallConn()
	if err != nil {
		p.ep.Close()
		return nil, fmt.Errorf("idle: epoll: %w", err)
	}
	go p.loop(rc)
	return p, nil
}

// Park calls wake (on a new goroutine) once c is readable or hung up.
// Data already waiting wakes it at once. After the poller has stopped
// (ErrBroken) Park refuses, and the caller must read blocking.
func (p *Poller) Park(c *Conn, wake func()) error {
	fd := c.FD()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		return p.broken
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd)}
	op := syscall.EPOLL_CTL_ADD
	switch o := p.owner[fd]; {
	case o == c:
		op = syscall.EPOLL_CTL_MOD
	case o != nil:
		// The previous owner was closed without Forget; the kernel
		// dropped its registration with the descriptor.
		delete(p.owner, fd)
		delete(p.parked, fd)
	}
	p.parked[fd] = wake
	if err := epollCtl(p.epfd, op, fd, &ev); err != nil {
		delete(p.parked, fd)
		return fmt.Errorf("idle: park fd %d: %w", fd, err)
	}
	p.owner[fd] = c
	return nil
}

// Forget unregisters c; call it before c is closed. It returns the wake
// function if c was parked, so the caller can run it and let the
// connection's reader see the close. Forgetting a connection that is not
// (or no longer) registered does nothing, whatever now uses its number.
func (p *Poller) Forget(c *Conn) func() {
	fd := c.FD()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.owner[fd] != c {
		return nil
	}
	wake := p.parked[fd]
	delete(p.parked, fd)
	delete(p.owner, fd)
	if p.broken == nil {
		epollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	}
	return wake
}

func (p *Poller) loop(rc syscall.RawConn) {
	events := make([]syscall.EpollEvent, 128)
	for {
		var n int
		var err error
		// Take what is ready without blocking; with nothing ready, wait
		// in the runtime's poller until the epoll descriptor is readable
		// (edge-triggered there, which is why we only wait after an
		// empty answer).
		rerr := rc.Read(func(fd uintptr) bool {
			n, err = p.wait(int(fd), events, 0)
			if err == syscall.EINTR {
				// A signal interrupted the call; nothing is wrong.
				n, err = 0, nil
				return true
			}
			return err != nil || n > 0
		})
		if rerr != nil {
			err = rerr
		}
		if err != nil {
			p.fail(err)
			return
		}
		p.mu.Lock()
		var wakes []func()
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if w := p.parked[fd]; w != nil {
				delete(p.parked, fd)
				wakes = append(wakes, w)
			}
		}
		p.mu.Unlock()
		for _, w := range wakes {
			p.run(w)
		}
	}
}

// maxSpare bounds the idle workers kept. At a club's load wake-ups come
// one at a time, so one spare catches nearly all of them; a burst starts
// fresh goroutines that end afterwards. A fixed cost (one grown stack),
// not one per session, and c2s's test that parked sessions hold no
// goroutines allows for it.
const maxSpare = 1

// run runs a wake function on a spare worker goroutine, or a new one.
// A goroutine started per wake-up began with a small stack and grew it in
// every TLS read (runtime.newstack/copystack: 8.8% of xmppd's CPU at 500
// msg/s); a worker keeps its grown stack. A spare worker waits on a
// channel, which needs no timer, so idle stays idle.
func (p *Poller) run(w func()) {
	p.wmu.Lock()
	if n := len(p.spare); n > 0 {
		ch := p.spare[n-1]
		p.spare = p.spare[:n-1]
		p.wmu.Unlock()
		ch <- w
		return
	}
	p.wmu.Unlock()
	go p.worker(w)
}

func (p *Poller) worker(w func()) {
	var ch chan func()
	for {
		// w may keep the goroutine for a connection's whole life (a
		// reader that could not park reads blocking); run starts
		// another worker when no spare is free.
		w()
		p.wmu.Lock()
		if len(p.spare) >= maxSpare {
			p.wmu.Unlock()
			return
		}
		if ch == nil {
			ch = make(chan func(), 1)
		}
		p.spare = append(p.spare, ch)
		p.wmu.Unlock()
		w = <-ch
	}
}

// fail stops the poller after epoll_wait failed with something other than
// EINTR (EBADF, EFAULT, EINVAL: none goes away by retrying). This used to
// panic and take every member's session down with it; one broken poller
// only costs memory: every parked connection is woken, its reader finds
// nothing (ErrWouldBlock), Park refuses, and the reader falls back to a
// blocking read on its own goroutine, as with -park-idle=false.
func (p *Poller) fail(err error) {
	p.mu.Lock()
	p.broken = fmt.Errorf("%w: epoll_wait: %w", ErrBroken, err)
	wakes := make([]func(), 0, len(p.parked))
	for fd, w := range p.parked {
		wakes = append(wakes, w)
		delete(p.parked, fd)
	}
	p.owner = map[int]*Conn{}
	p.ep.Close()
	p.mu.Unlock()
	slog.Error("idle: poller stopped; parked connections go back to a reader goroutine each",
		"err", err, "woken", len(wakes))
	for _, w := range wakes {
		go w()
	}
}
