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
	known  map[int]bool // registered with epoll (ONESHOT leaves them disarmed)
}

// NewPoller starts a poller.
func NewPoller() (*Poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("idle: epoll: %w", err)
	}
	p := &Poller{epfd: fd, parked: map[int]func(){}, known: map[int]bool{}}
	go p.loop()
	return p, nil
}

// Park calls wake (on a new goroutine) once fd is readable or hung up.
// Data already waiting wakes it at once.
func (p *Poller) Park(fd int, wake func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd)}
	op := syscall.EPOLL_CTL_MOD
	if !p.known[fd] {
		op = syscall.EPOLL_CTL_ADD
	}
	p.parked[fd] = wake
	if err := syscall.EpollCtl(p.epfd, op, fd, &ev); err != nil {
		delete(p.parked, fd)
		return fmt.Errorf("idle: park fd %d: %w", fd, err)
	}
	p.known[fd] = true
	return nil
}

// Forget removes fd before it is closed (descriptor numbers are reused) and
// returns the wake function if fd was parked, so the caller can run it to
// let the connection's owner see the close.
func (p *Poller) Forget(fd int) func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	wake := p.parked[fd]
	delete(p.parked, fd)
	if p.known[fd] {
		syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
		delete(p.known, fd)
	}
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
