package page

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Limiter allows N events per Window for each key (a source address, or
// "" for everybody together): a fixed window per key, enough to stop
// guessing a code or a password while a person who mistypes three times
// never notices.
type Limiter struct {
	N      int
	Window time.Duration
	// MaxKeys bounds the table (default 4096); when full, the oldest
	// windows are dropped first.
	MaxKeys int
	now     func() time.Time

	mu sync.Mutex
	m  map[string]*window
}

type window struct {
	start time.Time
	n     int
}

// NewLimiter allows n events per window per key.
func NewLimiter(n int, per time.Duration) *Limiter {
	return &Limiter{N: n, Window: per, MaxKeys: 4096, now: time.Now, m: map[string]*window{}}
}

// Allow counts one event for key and reports whether it is within the
// limit.
func (l *Limiter) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.m[key]
	if w == nil || now.Sub(w.start) >= l.Window {
		if w == nil && len(l.m) >= l.MaxKeys {
			for k, v := range l.m {
				if now.Sub(v.start) >= l.Window {
					delete(l.m, k)
				}
			}
			if len(l.m) >= l.MaxKeys {
				return false // under a flood of addresses: refuse rather than grow
			}
		}
		w = &window{start: now}
		l.m[key] = w
	}
	w.n++
	return w.n <= l.N
}

// ClientAddr is the address the request came from. X-Forwarded-For and
// friends are ignored: nothing sits in front of the box's web server.
func ClientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// LimitKey groups addresses for rate limits: one IPv6 /64 is one home
// (a phone picks new addresses inside it at will).
func LimitKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Private reports whether a is on this machine or a home network
// (loopback, RFC 1918, IPv6 unique-local, link-local): where the person
// setting up a box can be. Carrier-grade NAT space (100.64/10) is not.
func Private(a netip.Addr) bool {
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast()
}
