package c2s

import (
	"io"
	"sync"
	"time"
)

// shaper paces reading: once a connection has used its burst, Read sleeps
// until the average rate is back under the limit. The kernel's receive
// window then fills and TCP slows the sender; nothing is buffered on our
// side.
type shaper struct {
	r      io.Reader
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
}

func newShaper(r io.Reader, rate, burst int) *shaper {
	return &shaper{r: r, rate: float64(rate), burst: float64(burst), tokens: float64(burst), last: time.Now()}
}

func (s *shaper) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		now := time.Now()
		s.tokens += now.Sub(s.last).Seconds() * s.rate
		if s.tokens > s.burst {
			s.tokens = s.burst
		}
		s.last = now
		s.tokens -= float64(n)
		if s.tokens < 0 {
			time.Sleep(time.Duration(-s.tokens / s.rate * float64(time.Second)))
		}
	}
	return n, err
}

// ipLimits tracks per-source state: unauthenticated connections and SASL
// failures. Limits are per source address, never per account: locking an
// account would let anyone lock a member out. The onion listener, where
// every connection has tor's address, counts its connections under
// OnionBucket and its failures per account name tried (see backoffKey):
// those only slow down further wrong guesses at that name, never its right
// password.
type ipLimits struct {
	mu     sync.Mutex
	unauth map[string]int
	fails  map[string]*failures
}

type failures struct {
	n    int
	last time.Time
}

// failWindow is how long failures are remembered.
const failWindow = 10 * time.Minute

// maxFailKeys bounds the failure table: keyed by names over the onion
// listener, its keys are chosen by strangers.
const maxFailKeys = 10000

func newIPLimits() *ipLimits {
	return &ipLimits{unauth: map[string]int{}, fails: map[string]*failures{}}
}

// admit counts a new unauthenticated connection; false when ip has max.
func (l *ipLimits) admit(ip string, max int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max > 0 && l.unauth[ip] >= max {
		return false
	}
	l.unauth[ip]++
	return true
}

// release ends an unauthenticated connection's count (authenticated or gone).
func (l *ipLimits) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unauth[ip] <= 1 {
		delete(l.unauth, ip)
	} else {
		l.unauth[ip]--
	}
}

// failed records a SASL failure under key and returns how long to wait
// before answering it: nothing for the first few typos, then doubling up
// to 30 s.
func (l *ipLimits) failed(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	f := l.fails[key]
	if f == nil || now.Sub(f.last) > failWindow {
		// Forget stale entries now and then so the map stays small.
		if len(l.fails) >= 1000 {
			for k, v := range l.fails {
				if now.Sub(v.last) > failWindow {
					delete(l.fails, k)
				}
			}
		}
		// Still full of fresh keys (names made up by a stranger over
		// Tor): drop some at random rather than grow.
		for k := range l.fails {
			if len(l.fails) < maxFailKeys {
				break
			}
			delete(l.fails, k)
		}
		f = &failures{}
		l.fails[key] = f
	}
	f.n++
	f.last = now
	if f.n <= 3 {
		return 0
	}
	d := time.Second << min(f.n-4, 5)
	return min(d, 30*time.Second)
}

// failures reports how many failures are remembered under key (tests).
func (l *ipLimits) failureCount(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.fails[key]; f != nil {
		return f.n
	}
	return 0
}

// Shape paces reads from r like every c2s connection's stream: another
// transport (xmppd/ws) shapes its raw bytes with it, frame headers
// included, so that a flood of empty frames costs the box no more than
// the same rate of stanza bytes.
func Shape(r io.Reader, rate, burst int) io.Reader { return newShaper(r, rate, burst) }
