// Package session is one client connection after it has bound a resource:
// its identity, its presence state, and its outbound queue.
//
// Writes never block the sender: Send appends the serialized stanza to a
// bounded per-session buffer, and a writer goroutine that exists only while
// there is something to write drains it. An idle session therefore holds no
// goroutine and no write buffer on the send side; a reader that stops
// reading fills its own queue and is disconnected, never the sender.
//
// Nothing the session accepted is dropped without a trace (issue 9, item 2):
//   - Send reports false when the session cannot take a stanza, and the
//     server then tries the next resource, offline storage, or bounces.
//   - A session without stream management remembers where the messages are
//     in its queue; when the queue overflows or a write fails, the messages
//     not yet written are handed back (SetReroute) to be routed again.
//   - A session with stream management keeps every stanza until the client
//     acknowledges it, so on overflow or a dead link nothing is re-parsed:
//     the unacknowledged queue is resent on resumption or re-routed when the
//     session ends. Past a high-water mark such a session refuses further
//     chat messages (they go to offline storage) instead of being closed,
//     and says when it has caught up again (SetDrained).
//
// State on the session: typed fields only for what the core itself reads to
// route (availability, priority, the last presence, RFC 6121's "interested
// resource", which the roster sets and presence subscriptions read) and for
// the transport part of stream management (acks.go: its counters must move
// in the same order as the writes, under the session's lock). State that one
// module owns (offline's "already flushed", presence's directed set, carbons,
// CSI, …) goes in the value store (Value/SetValue) under a key type private
// to that module, so that adding a module never adds a field here.
package session

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// MaxQueue is how many bytes may wait for a slow reader before the session
// is closed.
const MaxQueue = 1 << 20

// WriteTimeout is how long a write may make no progress: a peer whose TCP
// window stays shut this long is gone. It bounds each writeChunk, not a
// whole queue: a phone resuming on a slow mobile link (20 KB/s) takes
// longer than a minute over a 1 MiB backlog and must still get it — a
// deadline on the whole write cut such a link off on every resumption.
// Use SetWriteTimeout to change it (tests make a phone vanish quickly).
var writeTimeout atomic.Int64

func init() { writeTimeout.Store(int64(60 * time.Second)) }

// SetWriteTimeout sets WriteTimeout for writes that start from now on and
// returns the previous value.
func SetWriteTimeout(d time.Duration) time.Duration {
	return time.Duration(writeTimeout.Swap(int64(d)))
}

// writeChunk is how much is written under one deadline.
const writeChunk = 64 << 10

// writeAll writes b to conn, each writeChunk under a fresh deadline, and
// clears the deadline after: a pending deadline is a runtime timer that
// would wake an idle server a minute after every write.
func writeAll(conn net.Conn, b []byte) error {
	defer conn.SetWriteDeadline(time.Time{})
	d := time.Duration(writeTimeout.Load())
	for len(b) > 0 {
		n := min(len(b), writeChunk)
		conn.SetWriteDeadline(time.Now().Add(d))
		if _, err := conn.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// maxPooled is the largest buffer returned to the pool: a queue that grew
// to a megabyte for one slow reader must not stay cached for everyone.
const maxPooled = 64 << 10

var idSeq atomic.Uint64

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// putBuf empties b and returns it to the pool if it is small enough.
func putBuf(b *[]byte) {
	if b == nil || cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// span is where one message stanza lies in a queue buffer.
type span struct{ start, end int32 }

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
	// marks are the messages in pending, for a session without stream
	// management: if pending is never written they are routed again
	// instead of vanishing with the buffer. spare is the writer's last
	// marks slice, kept to be reused.
	marks, spare []span
	writing      bool
	ended        bool // the session is over for good
	acks         *acks
	// backlogged: stream management, past the high-water mark; chat
	// messages are refused until the client has caught up (acks.go).
	backlogged bool
	reroute    func([]*stream.Element)
	drained    func()
	// filter sees every stanza before it is queued (filter.go: CSI).
	filter atomic.Pointer[Filter]

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
	// purpose: closed on purpose (a stream error, replaced, shutdown), as
	// opposed to a link that died (a read or write error, an overflowing
	// queue). Only a link that died may leave its session hibernating for
	// resumption (issue 9, item 3: the writer saw the dead link first,
	// marked it closing, and the session was ended instead).
	purpose bool
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

// SetReroute sets where messages go that the session accepted but could
// not write (its queue overflowed, or its connection failed) when it has no
// stream management to keep them. fn is called just after the session's
// lock is released, possibly by a caller of Send that holds locks of its
// own (offline delivery holds its account lock): it must hand the work to
// another goroutine and return.
func (s *Session) SetReroute(fn func([]*stream.Element)) {
	s.mu.Lock()
	s.reroute = fn
	s.mu.Unlock()
}

// SetDrained sets what runs (on its own goroutine) when a session that
// refused messages for being backlogged has caught up.
func (s *Session) SetDrained(fn func()) {
	s.mu.Lock()
	s.drained = fn
	s.mu.Unlock()
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

// send queues a stanza (Send, filter.go, runs the session's filter first).
// It returns false if the session cannot take it (ending, closing without
// stream management, its queue overflowed, or, with stream management, too
// far behind for another chat message): the caller then tries elsewhere.
func (s *Session) send(el *stream.Element) bool { return s.sendWith(el, nil) }

// sendWith is send with el's serialization given (nil: made here, in
// the session's content namespace). A given one is el appended with its
// namespace explicit (Element.Append(b, "")): valid in any stream, and
// the same bytes the message archive committed (server.Serialized).
func (s *Session) sendWith(el *stream.Element, wire []byte) bool {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	if s.acks != nil {
		if s.refuseLocked(el) {
			s.mu.Unlock()
			return false
		}
		if !s.acks.sent(el) {
			// Nobody has acknowledged anything for too long: the link
			// is as good as dead (the unacknowledged ones are kept).
			s.closeLocked()
			s.mu.Unlock()
			return false
		}
	}
	if s.cur == nil || s.cur.closing {
		// Hibernating: kept for resumption, or re-routed when the
		// session ends.
		ok := s.acks != nil
		if ok && wire != nil {
			s.acks.sized(len(wire))
		} else if ok {
			// Serialized only to weigh it: what a hibernating session
			// holds is bounded in bytes too (see highBytes).
			b := bufPool.Get().(*[]byte)
			*b = el.Append((*b)[:0], s.ContentNS)
			s.acks.sized(len(*b))
			putBuf(b)
		}
		s.mu.Unlock()
		return ok
	}
	if s.pending == nil {
		s.pending = bufPool.Get().(*[]byte)
	}
	start := len(*s.pending)
	if wire != nil {
		*s.pending = append(*s.pending, wire...)
	} else {
		*s.pending = el.Append(*s.pending, s.ContentNS)
	}
	if s.acks != nil {
		s.acks.sized(len(*s.pending) - start)
	} else if el.Local == "message" {
		s.marks = append(s.marks, span{int32(start), int32(len(*s.pending))})
	}
	if s.acks != nil && s.acks.wantRequest() {
		*s.pending = append(*s.pending, "<r xmlns='urn:xmpp:sm:3'/>"...)
	}
	if s.acks == nil && len(*s.pending) > MaxQueue && el.Local == "message" {
		// This one is refused, so its caller routes it elsewhere: it
		// must not also come back with the dropped queue.
		*s.pending = (*s.pending)[:start]
		s.marks = s.marks[:len(s.marks)-1]
		lost := s.overflowLocked()
		fn := s.reroute
		s.mu.Unlock()
		if len(lost) > 0 && fn != nil {
			fn(lost)
		}
		return false
	}
	ok, lost := s.kickLocked()
	fn := s.reroute
	s.mu.Unlock()
	if len(lost) > 0 && fn != nil {
		fn(lost) // returns at once (see SetReroute)
	}
	return ok
}

// SendRaw queues bytes that are already serialized (nonzas: they are not
// counted by stream management).
func (s *Session) SendRaw(b []byte) bool {
	s.mu.Lock()
	if s.ended || s.cur == nil || s.cur.closing {
		s.mu.Unlock()
		return false
	}
	if s.pending == nil {
		s.pending = bufPool.Get().(*[]byte)
	}
	*s.pending = append(*s.pending, b...)
	ok, lost := s.kickLocked()
	fn := s.reroute
	s.mu.Unlock()
	if len(lost) > 0 && fn != nil {
		fn(lost)
	}
	return ok
}

// kickLocked starts the writer, or closes an overflowing queue; lost are
// the messages of the dropped queue that need routing again.
func (s *Session) kickLocked() (ok bool, lost []*stream.Element) {
	if len(*s.pending) > MaxQueue {
		return false, s.overflowLocked()
	}
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
	return true, nil
}

// overflowLocked drops a queue that grew past MaxQueue and closes the link.
// The reader is not keeping up, and its socket is full, so a stream error
// could not reach it either: close now, which also wakes a writer stuck in
// Write. With stream management every stanza in the queue is also
// unacknowledged (resent or re-routed later); without it, the messages are
// parsed back and returned, for the caller to hand to the reroute
// function once it has let go of the lock.
func (s *Session) overflowLocked() (lost []*stream.Element) {
	lost = parseSpans(*s.pending, s.marks, s.ContentNS)
	s.marks = s.marks[:0]
	putBuf(s.pending)
	s.pending = nil
	s.closeLocked()
	return lost
}

// closeLocked closes the current connection from inside s.mu, as a link
// that died (not on purpose: it may hibernate).
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
			putBuf(buf)
			if closing {
				s.closeLink(l)
			}
			return
		}
		marks := s.marks
		s.marks, s.spare = s.spare[:0], nil
		drained := s.drainedLocked()
		s.mu.Unlock()
		if drained != nil {
			go drained()
		}
		if err := writeAll(l.conn, *buf); err != nil {
			s.writeFailed(l, *buf, marks)
			putBuf(buf)
			return
		}
		putBuf(buf)
		s.mu.Lock()
		if s.spare == nil {
			s.spare = marks[:0]
		}
		s.mu.Unlock()
	}
}

// writeFailed handles a write error on l: the link died (not closed on
// purpose, so a resumable session may hibernate). Without stream
// management the messages of the failed write and of the queue behind it
// are routed again: some of the failed write may have reached the client,
// but a duplicate is better than a loss.
func (s *Session) writeFailed(l *link, buf []byte, marks []span) {
	lost := parseSpans(buf, marks, s.ContentNS)
	s.mu.Lock()
	l.closing = true
	if s.cur == l {
		if s.pending != nil {
			lost = append(lost, parseSpans(*s.pending, s.marks, s.ContentNS)...)
			putBuf(s.pending)
			s.pending = nil
		}
		s.marks = s.marks[:0]
	}
	if s.cur != nil && s.cur != l && s.pending != nil && len(*s.pending) > 0 {
		// Resumed on a new connection while this write failed on the
		// old one: Attach saw a writer running and left the new queue
		// to it.
		go s.writeLoop()
	} else {
		s.writing = false
	}
	fn := s.reroute
	s.mu.Unlock()
	s.closeLink(l)
	if len(lost) > 0 && fn != nil {
		fn(lost)
	}
}

// parseSpans parses the messages marked in a queue buffer back into
// elements (only on failure paths: keeping elements for every queued
// message would cost a copy per stanza on the hot path).
func parseSpans(buf []byte, marks []span, ns string) []*stream.Element {
	if len(marks) == 0 {
		return nil
	}
	lim := stream.PostAuthLimits
	lim.MaxBytes, lim.MaxElements, lim.MaxDepth = MaxQueue, 8192, 32
	var out []*stream.Element
	for _, m := range marks {
		if m.start < 0 || int(m.end) > len(buf) || m.start >= m.end {
			continue
		}
		// The stanza was written with ns as the default namespace in
		// force, so it is read back inside a wrapper that declares it.
		p := stream.NewParser(io.MultiReader(strings.NewReader("<s xmlns='"+ns+"'>"),
			bytes.NewReader(buf[m.start:m.end])), lim)
		if ev, err := p.Next(); err != nil || ev.Kind != stream.Open {
			continue
		}
		if ev, err := p.Next(); err == nil && ev.Kind == stream.Stanza {
			out = append(out, ev.El)
		}
	}
	return out
}

// CloseWithError sends a stream error and closes the stream once the queue
// is flushed. cond "" closes the stream without an error. This is a close
// on purpose: the session does not hibernate.
func (s *Session) CloseWithError(cond, text string) {
	s.mu.Lock()
	l := s.cur
	if l == nil || l.closing {
		if l != nil {
			l.purpose = true
		}
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
	l.closing, l.purpose = true, true
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

// ClosedOnPurpose reports whether the current connection was closed on
// purpose (CloseWithError: a stream error, replaced by a new connection,
// shutdown) rather than dying (read or write error, overflow): only the
// latter may hibernate.
func (s *Session) ClosedOnPurpose() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil && s.cur.purpose
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

// TryEnd marks the session over for good and reports whether this call did
// it: of several goroutines ending a session at once (shutdown, the
// connection's end, the resumption timer) exactly one gets true and runs
// the end (issue 9, item 4). Nothing more is queued for it afterwards.
func (s *Session) TryEnd() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.ended = true
	return true
}

// TryEndDetached is TryEnd for a session still hibernating on generation
// gen: false if it was resumed meanwhile (a resumption timer that fires as
// the client comes back must not end the resumed session).
func (s *Session) TryEndDetached(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.cur != nil || s.gen != gen {
		return false
	}
	s.ended = true
	return true
}

// TryEndAt is TryEnd for the connection of generation gen: false if the
// session was resumed on a newer one (whose end is not this one's call).
func (s *Session) TryEndAt(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.gen != gen {
		return false
	}
	s.ended = true
	return true
}

// Ended reports whether the session ended.
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
