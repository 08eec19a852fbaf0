package idle

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
)

// Poller waits for many parked connections with one epoll instance and one
// thread blocked in epoll_wait: no timers, no wake-ups while all is quiet.
type Poller struct {
	epfd int
	// wait is epoll_wait; tests replace it to make it fail.
	wait func(epfd int, events []syscall.EpollEvent, msec int) (int, error)

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
	return newPoller(syscall.EpollWait)
}

func newPoller(wait func(int, []syscall.EpollEvent, int) (int, error)) (*Poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("idle: epoll: %w", err)
	}
	p := &Poller{epfd: fd, wait: wait, parked: map[int]func(){}, owner: map[int]*Conn{}}
	go p.loop()
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
	if err := syscall.EpollCtl(p.epfd, op, fd, &ev); err != nil {
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
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	}
	return wake
}

func (p *Poller) loop() {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := p.wait(p.epfd, events, -1)
		if err == syscall.EINTR {
			// A signal (the Go runtime preempts threads with SIGURG)
			// interrupted the wait; nothing is wrong.
			continue
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
			go w()
		}
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
	syscall.Close(p.epfd)
	p.mu.Unlock()
	slog.Error("idle: poller stopped; parked connections go back to a reader goroutine each",
		"err", err, "woken", len(wakes))
	for _, w := range wakes {
		go w()
	}
}
