package turn

import (
	"net"
	"sync"
	"time"
)

// limitListener bounds TURN-over-TCP connections. pion/turn v4.1.4 starts
// a goroutine and a read buffer for every accepted connection and never
// times one out (server.go readListener), so without this, anybody able
// to reach port 3478 could hold thousands of idle connections on a 1 GiB
// Pi. Connections over the caps are closed before pion sees them; a
// connection silent for longer than an allocation's lifetime (a live
// client refreshes every few minutes) is closed.
//
// Accept never returns a refused connection or a temporary error: pion
// stops accepting for good on the first error Accept returns.
type limitListener struct {
	net.Listener
	total, perIP int
	idle         time.Duration

	mu   sync.Mutex
	n    int
	byIP map[string]int
}

func newLimitListener(l net.Listener, total, perIP int, idle time.Duration) *limitListener {
	return &limitListener{Listener: l, total: total, perIP: perIP, idle: idle, byIP: map[string]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return nil, err
		}
		ip := ipOf(c.RemoteAddr())
		l.mu.Lock()
		ok := l.n < l.total && l.byIP[ip] < l.perIP
		if ok {
			l.n++
			l.byIP[ip]++
		}
		l.mu.Unlock()
		if !ok {
			c.Close()
			continue
		}
		return &limitConn{Conn: c, l: l, ip: ip}, nil
	}
}

// open is the number of connections held (tests).
func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

type limitConn struct {
	net.Conn
	l    *limitListener
	ip   string
	once sync.Once
}

func (c *limitConn) Read(b []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.l.idle))
	return c.Conn.Read(b)
}

func (c *limitConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.l.n--
		if c.l.byIP[c.ip]--; c.l.byIP[c.ip] <= 0 {
			delete(c.l.byIP, c.ip)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
