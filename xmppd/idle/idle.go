// Package idle lets a connection wait for its next bytes without a
// goroutine. A bound XMPP session spends nearly all its life waiting; in Go
// that normally costs a parked goroutine and its stack (8 KiB after a TLS
// read) per connection, which is most of what an idle session costs. Here a
// connection that has nothing to read is handed to one poller (epoll on
// Linux) and its reader goroutine exits; when bytes arrive, a spare
// worker goroutine (or a fresh one) resumes it.
//
// It works below TLS: Conn wraps the TCP connection so that, in
// non-blocking mode, a read that would block returns ErrWouldBlock at once
// (crypto/tls treats it as a temporary error and keeps a partly received
// record for the next call; TestTLSRecordSplitAcrossPark holds every Go
// release to that). If the poller itself fails, Park refuses (ErrBroken)
// and connections go back to a blocking reader goroutine each.
package idle

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrWouldBlock is returned by a non-blocking Conn with nothing to read.
var ErrWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "idle: read would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// Conn is a TCP connection whose reads can be switched to non-blocking.
type Conn struct {
	net.Conn
	rc       syscall.RawConn
	fd       int
	nonblock atomic.Bool
}

// Wrap returns c wrapped, or nil if c has no file descriptor (then the
// caller keeps a goroutine per connection).
func Wrap(c net.Conn) *Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &Conn{Conn: c, rc: rc, fd: -1}
	rc.Control(func(fd uintptr) { w.fd = int(fd) })
	if w.fd < 0 {
		return nil
	}
	return w
}

// SetNonblocking switches reads between waiting (the default) and
// returning ErrWouldBlock.
func (c *Conn) SetNonblocking(on bool) { c.nonblock.Store(on) }

// Read reads; in non-blocking mode it makes exactly one attempt.
func (c *Conn) Read(p []byte) (int, error) {
	if !c.nonblock.Load() {
		return c.Conn.Read(p)
	}
	var n int
	var err error
	cerr := c.rc.Read(func(fd uintptr) bool {
		n, err = sysRead(int(fd), p)
		return true
	})
	if cerr != nil {
		return 0, cerr
	}
	if err == syscall.EAGAIN || err == syscall.EWOULDBLOCK {
		return 0, ErrWouldBlock
	}
	if err == syscall.EINTR {
		return 0, ErrWouldBlock
	}
	if err != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: err}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p. It is net.Conn's Write with the system call made
// raw (see sysRead), which is why it is here: a parked session's every
// stanza out goes through it. When the socket is full it waits in the
// runtime's poller like net.Conn does, and the write deadline applies.
func (c *Conn) Write(p []byte) (int, error) {
	var n int
	var err error
	cerr := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := sysWrite(int(fd), p[n:])
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN || e == syscall.EWOULDBLOCK:
				return false // wait until writable
			case e != nil:
				err = e
				return true
			}
			n += m
		}
		return true
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, nil
}

// FD is the connection's descriptor (for the poller).
func (c *Conn) FD() int { return c.fd }

// SetReadDeadline is ignored in non-blocking mode (a deadline would make
// the runtime refuse the read before trying it).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }
