package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/xmppd/client"
)

// loader logs accounts PREFIX1… in and moves messages between them.
type loader struct {
	addr, domain, prefix, password string
	keys                           client.KeyCache
	tls                            *tls.Config
	// wsURL, when set, logs in over XMPP over WebSocket there (ws.go).
	wsURL string
}

func (l *loader) cfg(i int, resource string) client.Config {
	return client.Config{
		Addr: l.addr, Domain: l.domain,
		User: l.prefix + strconv.Itoa(i), Password: l.password,
		Resource: resource, TLS: l.tls, Keys: &l.keys, Timeout: 30 * time.Second,
	}
}

// session is one logged-in connection with a reader goroutine that hands
// messages to onMsg (if set) and drops everything else.
type session struct {
	c     xconn
	onMsg atomic.Pointer[func([]byte)]
	onIQ  atomic.Pointer[func([]byte)]
	// onPres sees presence stanzas (room joins in muc.go).
	onPres atomic.Pointer[func([]byte)]
	done   chan struct{}
}

func newSession(c xconn) *session {
	s := &session{c: c, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			b, err := c.ReadStanza()
			if err != nil {
				return
			}
			switch client.Name(b) {
			case "message":
				if f := s.onMsg.Load(); f != nil {
					(*f)(b)
				}
			case "iq":
				if f := s.onIQ.Load(); f != nil {
					(*f)(b)
				}
			case "presence":
				if f := s.onPres.Load(); f != nil {
					(*f)(b)
				}
			}
		}
	}()
	return s
}

func (s *session) close() {
	s.c.Close()
	select {
	case <-s.done:
	case <-time.After(2 * time.Second):
	}
}

// openSessions logs accounts from..to-1 in (1-based names) with a few
// workers, sends initial presence, and returns the sessions in order. It
// stops at the first error or when the time limit is up.
func (l *loader) openSessions(from, to, workers int, register bool, limit time.Duration) ([]*session, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out := make([]*session, to-from)
	var next atomic.Int64
	next.Store(int64(from))
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				cfg := l.cfg(i, "idle")
				cfg.Register = register
				var c xconn
				var err error
				if l.wsURL != "" {
					var w *wsConn
					if w, err = wsDial(ctx, l.wsURL, cfg); err == nil {
						c = w
					}
				} else {
					var t *client.Conn
					if t, err = client.Dial(ctx, cfg); err == nil {
						c = t
					}
				}
				if err == nil {
					err = c.Send([]byte("<presence/>"))
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("login %s%d: %w", l.prefix, i, err)
					}
					mu.Unlock()
					cancel()
					return
				}
				out[i-from] = newSession(c)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("opening sessions %d..%d: %w", from, to-1, ctx.Err())
	}
	if firstErr != nil {
		closeAll(out)
		return nil, el, firstErr
	}
	return out, el, nil
}

func closeAll(ss []*session) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, s := range ss {
		if s == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); s.close(); <-sem }()
	}
	wg.Wait()
}

// bodyTS extracts the send time stamped in a message body.
func bodyTS(b []byte) (int64, bool) {
	i := bytes.Index(b, []byte("<body>"))
	if i < 0 {
		return 0, false
	}
	rest := b[i+6:]
	j := bytes.IndexByte(rest, ' ')
	if j < 0 {
		return 0, false
	}
	ts, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return ts, err == nil
}

const filler = "lorem-ipsum-dolor-sit-amet-consectetur-adipiscing-elit"

func appendMsg(b []byte, to string, id int64) []byte {
	return appendMsgAt(b, to, id, time.Now().UnixNano())
}

// appendMsgAt stamps the message with ts (ns since the epoch): the time it
// was meant to be sent, which the fixed-rate runs measure latency from.
func appendMsgAt(b []byte, to string, id, ts int64) []byte {
	b = append(b, "<message type='chat' to='"...)
	b = append(b, to...)
	b = append(b, "' id='m"...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, "'><body>"...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, ' ')
	b = append(b, filler...)
	b = append(b, "</body></message>"...)
	return b
}

type satResult struct {
	delivered int64
	bad       int64 // error bounces or messages without our stamp
	// run-queue waits of server and generator during the window
	serverWait, genWait time.Duration
	window              time.Duration
	serverCPU           float64 // seconds
	selfCPU             float64
}

// saturate keeps `window` messages in flight per pair (sender i →
// receiver i) and counts deliveries over the measuring window after a
// warm-up.
func saturate(pid int, senders, receivers []*session, inflight int, warm, window time.Duration) satResult {
	var delivered, bad atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range senders {
		tokens := make(chan struct{}, inflight)
		for k := 0; k < inflight; k++ {
			tokens <- struct{}{}
		}
		f := func(b []byte) {
			if _, ok := bodyTS(b); !ok || bytes.Contains(b, []byte("type='error'")) || bytes.Contains(b, []byte(`type="error"`)) {
				bad.Add(1)
				return
			}
			delivered.Add(1)
			select {
			case tokens <- struct{}{}:
			default:
			}
		}
		receivers[i].onMsg.Store(&f)
		to := receivers[i].c.JID()
		snd := senders[i].c
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			var id int64
			for {
				select {
				case <-stop:
					return
				case <-tokens:
				case <-time.After(2 * time.Second):
					// A lost message would otherwise stall this pair.
				}
				buf = buf[:0]
				buf = appendMsg(buf, to, id)
				id++
			more:
				for k := 0; k < 32; k++ {
					select {
					case <-tokens:
						buf = appendMsg(buf, to, id)
						id++
					default:
						break more
					}
				}
				if snd.Send(buf) != nil {
					return
				}
			}
		}()
	}
	time.Sleep(warm)
	d0, s0, c0, g0 := delivered.Load(), measure(pid), selfCPU(), measure(os.Getpid())
	t0 := time.Now()
	time.Sleep(window)
	d1, s1, c1, g1 := delivered.Load(), measure(pid), selfCPU(), measure(os.Getpid())
	el := time.Since(t0)
	close(stop)
	wg.Wait()
	for _, r := range receivers {
		r.onMsg.Store(nil)
	}
	time.Sleep(time.Second) // let in-flight messages drain before the next phase
	return satResult{delivered: d1 - d0, window: el, bad: bad.Load(),
		serverWait: time.Duration(s1.runDelay - s0.runDelay), genWait: time.Duration(g1.runDelay - g0.runDelay),
		serverCPU: float64(s1.cpuTicks-s0.cpuTicks) / clkTck, selfCPU: c1 - c0}
}

type loginResult struct {
	ok, failed int64
	window     time.Duration
	serverCPU  float64
	firstErr   error
}

// logins runs full logins (TCP, STARTTLS, SCRAM, bind, close) with a few
// concurrent workers over accounts 1..n for the given window.
func (l *loader) logins(pid, n, workers int, window time.Duration) loginResult {
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var ok, failed, next atomic.Int64
	var firstErr atomic.Pointer[error]
	s0 := measure(pid)
	start := time.Now()
	end, _ := ctx.Deadline()
	end = end.Add(-10 * time.Millisecond)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				i := int(next.Add(1)%int64(n)) + 1
				c, err := client.Dial(ctx, l.cfg(i, "login"+strconv.Itoa(i)))
				if err != nil {
					// A dial cut off by the end of the window is not a
					// failure; the deadline can fire a moment before
					// ctx reports it, so compare with the clock.
					if time.Now().Before(end) {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, &err)
					}
					continue
				}
				ok.Add(1)
				c.Close()
			}
		}()
	}
	wg.Wait()
	r := loginResult{ok: ok.Load(), failed: failed.Load(), window: time.Since(start)}
	r.serverCPU = float64(measure(pid).cpuTicks-s0.cpuTicks) / clkTck
	if e := firstErr.Load(); e != nil {
		r.firstErr = *e
	}
	return r
}
