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
	Conn net.Conn
	// ContentNS is jabber:client (or jabber:server for s2s).
	ContentNS string

	mu      sync.Mutex
	pending *[]byte
	writing bool
	closing bool // no more stanzas accepted; close after flush
	closed  bool
	done    chan struct{}

	// Presence state, read by the router to choose recipients and owned by
	// the presence module.
	pmu        sync.RWMutex
	available  bool
	priority   int
	presence   *stream.Element
	interested bool // requested the roster: gets pushes and probes answered

	vmu  sync.Mutex
	vals map[any]any

	// BeforeClose, if set, runs just before the connection is closed and
	// returns a function to run after it (the transport unregisters a
	// parked connection and then wakes its reader to see the close).
	BeforeClose func() (after func())
}

// New wraps a connection whose stream has been negotiated.
func New(conn net.Conn, full jid.JID, contentNS string) *Session {
	return &Session{
		ID: idSeq.Add(1), JID: full, User: full.Localpart(), Conn: conn,
		ContentNS: contentNS, done: make(chan struct{}),
	}
}

// Done is closed when the connection has been closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Send queues a stanza. It returns false if the session is closing or the
// queue overflowed (which closes the session).
func (s *Session) Send(el *stream.Element) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.pending == nil {
		s.pending = bufPool.Get().(*[]byte)
	}
	*s.pending = el.Append(*s.pending, s.ContentNS)
	return s.kickLocked()
}

// SendRaw queues bytes that are already serialized.
func (s *Session) SendRaw(b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
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
		// The reader is not keeping up. Dropping stanzas silently would
		// lose messages; closing makes the client reconnect and fetch them
		// from storage.
		// Its socket is full, so a stream error could not reach it
		// either: close now, which also wakes a writer stuck in Write.
		*s.pending = (*s.pending)[:0]
		s.closing = true
		go s.closeConn()
		return false
	}
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
	return !s.closing
}

func (s *Session) writeLoop() {
	for {
		s.mu.Lock()
		buf := s.pending
		s.pending = nil
		if buf == nil || len(*buf) == 0 {
			s.writing = false
			closing := s.closing
			s.mu.Unlock()
			if buf != nil {
				bufPool.Put(buf)
			}
			if closing {
				s.closeConn()
			}
			return
		}
		s.mu.Unlock()
		s.Conn.SetWriteDeadline(time.Now().Add(WriteTimeout))
		_, err := s.Conn.Write(*buf)
		if cap(*buf) <= 64<<10 {
			*buf = (*buf)[:0]
			bufPool.Put(buf)
		}
		if err != nil {
			s.mu.Lock()
			s.closing = true
			s.pending = nil
			s.writing = false
			s.mu.Unlock()
			s.closeConn()
			return
		}
	}
}

// CloseWithError sends a stream error and closes the stream once the queue
// is flushed. cond "" closes the stream without an error.
func (s *Session) CloseWithError(cond, text string) {
	s.mu.Lock()
	if s.closing {
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
	s.closing = true
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
	s.mu.Unlock()
	// A peer that never reads must not keep the connection open forever.
	time.AfterFunc(10*time.Second, s.closeConn)
}

// Closing reports whether the session stopped accepting stanzas.
func (s *Session) Closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Session) closeConn() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.closing = true, true
	s.mu.Unlock()
	var after func()
	if s.BeforeClose != nil {
		after = s.BeforeClose()
	}
	s.Conn.Close()
	if after != nil {
		after()
	}
	close(s.done)
}

// Kill closes the connection at once (the reader is gone).
func (s *Session) Kill() { s.closeConn() }

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
