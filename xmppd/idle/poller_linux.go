package idle

import (
	"fmt"
	"sync"
	"syscall"
)

// Poller waits for many parked connections with one epoll instance and one
// thread blocked in epoll_wait: no timers, no wake-ups while all is quiet.
type Poller struct {
	epfd int

	mu     sync.Mutex
	parked map[int]func()
	// owner is the connection registered under each descriptor
	// (ONESHOT leaves a woken one registered but disarmed). Keyed by
	// owner, not just number: once a connection is closed its number is
	// reused, and a late Forget from the old owner must not unregister
	// the new one — that was a lost wake-up.
	owner map[int]*Conn
}

// NewPoller starts a poller.
func NewPoller() (*Poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("idle: epoll: %w", err)
	}
	p := &Poller{epfd: fd, parked: map[int]func(){}, owner: map[int]*Conn{}}
	go p.loop()
	return p, nil
}

// Park calls wake (on a new goroutine) once c is readable or hung up.
// Data already waiting wakes it at once.
func (p *Poller) Park(c *Conn, wake func()) error {
	fd := c.FD()
	p.mu.Lock()
	defer p.mu.Unlock()
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
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	return wake
}

func (p *Poller) loop() {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			panic(fmt.Sprintf("idle: epoll_wait: %v", err))
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
