// Package session is one client connection after it has bound a resource:
// its identity, its presence state, and its outbound queue.
//
// Writes never block the sender: Send appends the serialized stanza to a
// bounded per-session buffer, and a writer goroutine that exists only while
// there is something to write drains it. An idle session therefore holds no
// goroutine and no write buffer on the send side; a reader that stops
// reading fills its own queue and is disconnected, never the sender.
package session

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// MaxQueue is how many bytes may wait for a slow reader before the session
// is closed.
const MaxQueue = 1 << 20

// WriteTimeout bounds one write: a peer whose TCP window stays shut this
// long is gone.
const WriteTimeout = 60 * time.Second

var idSeq atomic.Uint64

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// Session is a bound client resource.
type Session struct {
	ID   uint64
	JID  jid.JID // full JID
	User string  // localpart, the key accounts and storage use
	// ContentNS is jabber:client (or jabber:server for s2s).
	ContentNS string

	mu      sync.Mutex
	cur     *link // the connection; nil while hibernating (XEP-0198)
	gen     uint64
	pending *[]byte
	writing bool
	ended   bool // the session is over for good
	acks    *acks

	// Presence state, read by the router to choose recipients and owned by
	// the presence module.
	pmu        sync.RWMutex
	available  bool
	priority   int
	presence   *stream.Element
	interested bool // requested the roster: gets pushes and probes answered

	vmu  sync.Mutex
	vals map[any]any
}

// link is one connection carrying the session. Stream management can move
// a session to a new link after the old one died.
type link struct {
	conn    net.Conn
	closing bool // no more stanzas are written to it
	closed  bool
	done    chan struct{}
	// before runs just before the connection is closed and returns a
	// function to run after it (the transport unregisters a parked
	// connection and then wakes its reader to see the close).
	before func() (after func())
}

// New wraps a connection whose stream has been negotiated.
func New(conn net.Conn, full jid.JID, contentNS string) *Session {
	return &Session{
		ID: idSeq.Add(1), JID: full, User: full.Localpart(), ContentNS: contentNS,
		cur: &link{conn: conn, done: make(chan struct{})}, gen: 1,
	}
}

// SetBeforeClose sets the current connection's close hook (see link.before).
func (s *Session) SetBeforeClose(fn func() (after func())) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		s.cur.before = fn
	}
}

// Gen identifies the connection currently carrying the session; it changes
// when the session is resumed on a new one.
func (s *Session) Gen() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Done is closed when the current connection has been closed.
func (s *Session) Done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.cur.done
}

// Send queues a stanza. It returns false if the session cannot take it
// (ending, or its queue overflowed, which closes the connection).
func (s *Session) Send(el *stream.Element) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	if s.acks != nil {
		if !s.acks.sent(el) {
			// Nobody has acknowledged anything for too long.
			s.closeLocked()
			return false
		}
	}
	if s.cur == nil || s.cur.closing {
		// Hibernating: kept for resumption, or re-routed when the
		// session ends.
		return s.acks != nil
	}
	if s.pending == nil {
		s.pending = bufPool.Get().(*[]byte)
	}
	*s.pending = el.Append(*s.pending, s.ContentNS)
	if s.acks != nil && s.acks.wantRequest() {
		*s.pending = append(*s.pending, "<r xmlns='urn:xmpp:sm:3'/>"...)
	}
	return s.kickLocked()
}

// SendRaw queues bytes that are already serialized (nonzas: they are not
// counted by stream management).
func (s *Session) SendRaw(b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.cur == nil || s.cur.closing {
		return false
	}
	if s.pending == nil {
		s.pending = bufPool.Get().(*[]byte)
	}
	*s.pending = append(*s.pending, b...)
	return s.kickLocked()
}

func (s *Session) kickLocked() bool {
	if len(*s.pending) > MaxQueue {
		// The reader is not keeping up, and its socket is full, so a
		// stream error could not reach it either: close now, which also
		// wakes a writer stuck in Write. What it did not get is in
		// storage (or, with stream management, re-routed).
		*s.pending = (*s.pending)[:0]
		s.closeLocked()
		return false
	}
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
	return true
}

// closeLocked closes the current connection from inside s.mu.
func (s *Session) closeLocked() {
	if s.cur == nil {
		return
	}
	s.cur.closing = true
	l := s.cur
	go s.closeLink(l)
}

func (s *Session) writeLoop() {
	for {
		s.mu.Lock()
		l := s.cur
		buf := s.pending
		s.pending = nil
		if l == nil || buf == nil || len(*buf) == 0 {
			s.writing = false
			closing := l != nil && l.closing
			s.mu.Unlock()
			if buf != nil {
				*buf = (*buf)[:0]
				bufPool.Put(buf)
			}
			if closing {
				s.closeLink(l)
			}
			return
		}
		s.mu.Unlock()
		l.conn.SetWriteDeadline(time.Now().Add(WriteTimeout))
		_, err := l.conn.Write(*buf)
		// Clear it at once: a pending deadline is a runtime timer that
		// would wake an idle server a minute after every write.
		l.conn.SetWriteDeadline(time.Time{})
		if cap(*buf) <= 64<<10 {
			*buf = (*buf)[:0]
			bufPool.Put(buf)
		}
		if err != nil {
			s.mu.Lock()
			l.closing = true
			if s.cur == l {
				s.pending = nil
			}
			s.writing = false
			s.mu.Unlock()
			s.closeLink(l)
			return
		}
	}
}

// CloseWithError sends a stream error and closes the stream once the queue
// is flushed. cond "" closes the stream without an error.
func (s *Session) CloseWithError(cond, text string) {
	s.mu.Lock()
	l := s.cur
	if l == nil || l.closing {
		s.mu.Unlock()
		return
	}
	if s.pending == nil {
		s.pending = bufPool.Get().(*[]byte)
	}
	if cond == "" {
		*s.pending = append(*s.pending, "</stream:stream>"...)
	} else {
		*s.pending = append(*s.pending, streamError(cond, text)...)
	}
	l.closing = true
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
	s.mu.Unlock()
	// A peer that never reads must not keep the connection open forever.
	time.AfterFunc(10*time.Second, func() { s.closeLink(l) })
}

// Closing reports whether the current connection stopped taking stanzas.
func (s *Session) Closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur == nil || s.cur.closing
}

func (s *Session) closeLink(l *link) {
	s.mu.Lock()
	if l.closed {
		s.mu.Unlock()
		return
	}
	l.closed, l.closing = true, true
	before := l.before
	s.mu.Unlock()
	var after func()
	if before != nil {
		after = before()
	}
	l.conn.Close()
	if after != nil {
		after()
	}
	close(l.done)
}

// Kill closes the current connection at once (the reader is gone).
func (s *Session) Kill() {
	s.mu.Lock()
	l := s.cur
	s.mu.Unlock()
	if l != nil {
		s.closeLink(l)
	}
}

// End marks the session over for good: nothing more is queued for it.
func (s *Session) End() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
}

// Ended reports whether End was called.
func (s *Session) Ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

func streamError(cond, text string) []byte {
	b := []byte("<stream:error><" + cond + " xmlns='" + stream.NSStreamE + "'/>")
	if text != "" {
		b = append(b, "<text xmlns='"+stream.NSStreamE+"'>"...)
		b = stream.AppendEscaped(b, text, false)
		b = append(b, "</text>"...)
	}
	return append(b, "</stream:error></stream:stream>"...)
}

// StreamError serializes a stream error followed by the closing tag.
func StreamError(cond, text string) []byte { return streamError(cond, text) }

// Presence state.

// SetPresence records the session's last broadcast presence. A nil or
// unavailable presence makes the session unavailable.
func (s *Session) SetPresence(p *stream.Element, available bool, priority int) {
	s.pmu.Lock()
	s.presence, s.available, s.priority = p, available, priority
	s.pmu.Unlock()
}

// Presence returns the last broadcast presence, availability and priority.
func (s *Session) Presence() (*stream.Element, bool, int) {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.presence, s.available, s.priority
}

// Available reports whether the session sent available presence.
func (s *Session) Available() bool {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.available
}

// Priority is the session's presence priority.
func (s *Session) Priority() int {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.priority
}

// SetInterested marks that the client requested its roster (RFC 6121
// "interested resource").
func (s *Session) SetInterested() {
	s.pmu.Lock()
	s.interested = true
	s.pmu.Unlock()
}

// Interested reports whether the client requested its roster.
func (s *Session) Interested() bool {
	s.pmu.RLock()
	defer s.pmu.RUnlock()
	return s.interested
}

// Value and SetValue hold per-session state of modules (carbons enabled,
// CSI state, …), keyed by a private type of the module.
func (s *Session) Value(key any) any {
	s.vmu.Lock()
	defer s.vmu.Unlock()
	return s.vals[key]
}

// SetValue sets a module's per-session state.
func (s *Session) SetValue(key, v any) {
	s.vmu.Lock()
	if s.vals == nil {
		s.vals = map[any]any{}
	}
	s.vals[key] = v
	s.vmu.Unlock()
}
