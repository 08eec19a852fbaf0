package s2s

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// DefaultWriteTimeout bounds one write to a peer (Config.WriteTimeout): a
// peer that never reads fills its TCP window and then is cut off instead
// of holding the queue.
const DefaultWriteTimeout = 30 * time.Second

// link is an authenticated stream our stanzas for one remote domain go
// out on: one we dialled, or a peer's bidirectional inbound stream
// (bidi.go).
type link struct {
	c    net.Conn
	s    *S2S
	once sync.Once
	done chan struct{} // closed when the peer ends the stream or it fails
	// maxBytes is the largest stanza the peer accepts (XEP-0478; 0:
	// not announced).
	maxBytes int
	// bidi: the peer sends on it too (XEP-0288), so its reader, not the
	// queue, closes it once idle both ways.
	bidi bool
	// wmu orders writes: the queue's, and the stream's own (dialback
	// answers, stream errors) from its reader.
	wmu *sync.Mutex
	// lastWrite is when something was last written (UnixNano): a
	// bidirectional stream we keep writing on is not idle.
	lastWrite atomic.Int64
	// closing: our closing tag is out (with a stream error).
	closing atomic.Bool
	// domain is the peer's domain (the 'from' it may send stanzas with
	// on a dialled bidirectional stream).
	domain string
}

// peerMaxBytes reads XEP-0478's max-bytes from a peer's stream features.
func peerMaxBytes(f *stream.Element) int {
	if f == nil {
		return 0
	}
	l := f.Child(nsLimits, "limits")
	if l == nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(l.ChildText(nsLimits, "max-bytes")))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// connect returns a link from local to domain: a bidirectional stream
// already open for that pair (bidi.go), else a new connection dialled and
// authenticated as local.
func (s *S2S) connect(local, domain string) (*link, error) {
	if l := s.bidi.get(local, domain); l != nil {
		s.cfg.Log.Debug("s2s: sending on a bidirectional stream", "domain", domain, "from", local)
		return l, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout+s.cfg.NegotiateTimeout)
	defer cancel()
	oc, err := s.dial(ctx, local, domain)
	if err != nil {
		return nil, err
	}
	// XEP-0288: asked for before authenticating (§2.2), after TLS.
	bidi := oc.features.Child(nsBidiFeat, "bidi") != nil
	if bidi {
		if err := write(oc.c, stream.New(nsBidi, "bidi")); err != nil {
			s.untrack(oc.c)
			oc.c.Close()
			return nil, err
		}
	}
	method, err := s.authenticate(oc, domain)
	if err != nil {
		s.untrack(oc.c)
		oc.c.Close()
		return nil, err
	}
	s.cfg.Log.Info("s2s: connected out", "domain", domain, "from", local, "auth", method, "bidi", bidi)
	oc.c.SetDeadline(time.Time{})
	oc.p.SetLimits(s.postAuth())
	l := &link{c: oc.c, s: s, done: make(chan struct{}), maxBytes: peerMaxBytes(oc.features), bidi: bidi, wmu: new(sync.Mutex), domain: domain}
	l.lastWrite.Store(time.Now().UnixNano())
	if bidi {
		s.bidi.add(local, domain, l)
	}
	go l.read(oc.p)
	return l, nil
}

// read handles what the peer sends on our outgoing stream until it ends.
// Without bidi that is nothing but whitespace and a closing tag or stream
// error; with it, stanzas from the peer's domain (routed in, as on an
// inbound stream), and the stream ends once idle both ways.
func (l *link) read(p *stream.Parser) {
	defer l.end()
	idle := l.s.bidiIdle()
	for {
		if l.bidi {
			l.c.SetReadDeadline(time.Now().Add(idle))
		}
		ev, err := p.Next()
		if err != nil {
			var ne net.Error
			if l.bidi && errors.As(err, &ne) && ne.Timeout() && !p.Partial() &&
				time.Since(time.Unix(0, l.lastWrite.Load())) < idle {
				continue // we still use it
			}
			var se *stream.Error
			if errors.As(err, &se) {
				l.fail(se.Condition, se.Text)
			}
			return
		}
		if ev.Kind == stream.Close {
			return
		}
		if ev.Kind != stream.Stanza {
			continue
		}
		el := ev.El
		switch {
		case el.Space == stream.NSStream && el.Local == "error":
			l.s.cfg.Log.Info("s2s: stream error from peer", "err", el.String())
			return
		case !l.bidi:
		case isStanza(el):
			if cond, text := l.s.accept(el, func(d string) bool { return d == l.domain }); cond != "" {
				l.fail(cond, text)
				return
			}
		case el.Space == NSDialback && el.Local == "result" && el.Get("type") == "":
			// The peer asks to send from another of its domains on our
			// stream (XEP-0288 §2.2 piggybacking). Its key was made for a
			// stream id of its own, which this stream does not have; a
			// dialback error (XEP-0220 §2.6) sends it to a stream of its
			// own for that domain.
			r := dbElement("result", "from", el.Get("to"), "to", el.Get("from"), "type", "error").
				Add(stream.New(NSServer, "error", "type", "cancel").Add(stream.New(stream.NSStanzaE, "feature-not-implemented")))
			if l.write(r.Append(nil, NSServer)) != nil {
				return
			}
		}
	}
}

// fail writes a stream error (and our closing tag) to the peer.
func (l *link) fail(cond, text string) {
	l.closing.Store(true)
	l.write(session.StreamError(cond, text))
	l.s.cfg.Log.Info("s2s: stream error to peer", "domain", l.domain, "cond", cond, "text", text)
}

// errTooBig is a stanza larger than the peer accepts.
var errTooBig = errors.New("s2s: stanza larger than the peer accepts")

// send writes a queued stanza's wire bytes (queued.wire).
func (l *link) send(b []byte) error {
	if l.maxBytes > 0 && len(b) > l.maxBytes {
		return errTooBig
	}
	err := l.write(b)
	if err != nil && l.bidi {
		// Its reader ends it (and drops it from the table) when it
		// sees the connection closed.
		l.c.Close()
	}
	return err
}

func (l *link) write(b []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.c.SetWriteDeadline(time.Now().Add(l.s.cfg.WriteTimeout))
	_, err := l.c.Write(b)
	l.lastWrite.Store(time.Now().UnixNano())
	return err
}

// close is the queue letting go of the link: a plain one is closed; a
// bidirectional one stays open for the peer (and for our next stanzas)
// until its reader finds it idle both ways.
func (l *link) close() {
	if l.bidi {
		return
	}
	l.end()
}

// end closes a dialled link.
func (l *link) end() {
	l.once.Do(func() {
		l.s.bidi.drop(l)
		close(l.done)
		l.c.SetWriteDeadline(time.Now().Add(time.Second)) // a blocked write gives up the lock
		if !l.closing.Load() {
			l.wmu.Lock()
			l.c.SetWriteDeadline(time.Now().Add(time.Second))
			l.c.Write([]byte("</stream:stream>"))
			l.wmu.Unlock()
		}
		l.s.untrack(l.c)
		l.c.Close()
	})
}
