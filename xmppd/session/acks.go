package session

import (
	"errors"
	"net"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// Stream management (XEP-0198) state. The protocol lives in mod/smacks;
// the counting lives here because it must happen in the same order as the
// writes, under the session's lock.

// MaxUnacked is how many stanzas may wait for an acknowledgement before the
// connection is considered dead.
const MaxUnacked = 1000

// Push-back (issue 9, burst with stream management: 3,000 messages to a
// client that acked slowly killed its session at MaxUnacked and lost what
// Send refused). Past the high-water mark — unacknowledged stanzas, or
// their bytes (which include everything queued: the queue holds only
// stanzas not yet acknowledged, and a hibernating session holds nothing
// else) — a session refuses further chat messages; the server then
// stores them offline (durably, so the sender's acknowledgement is true)
// or bounces them when storage is full. Presence, iq and error messages are
// still queued: they are small, have no storage to go to, and a flood of
// them still meets the hard limits (MaxUnacked, MaxQueue), which close the
// link as dead (it hibernates if resumable). Once the client has caught up
// below the low-water mark the session says so (SetDrained) and offline
// storage hands it what waited.
//
// Why not pause the sender's reading instead: the sender's reader is the
// goroutine that also reads its own acknowledgements, so two members
// flooding each other (or one flooding their own bare JID) would deadlock
// until a timeout, and one stalled phone would stall everyone writing to
// it. Storage is bounded per account and keeps the message durable.
// Reordering: messages stored while backlogged reach the client after any
// that went live once it caught up, but carry their XEP-0203 delay stamp.
const (
	highUnacked = MaxUnacked / 2
	lowUnacked  = MaxUnacked / 10
	highBytes   = MaxQueue / 2
	lowBytes    = MaxQueue / 8
)

// divertable reports whether el is a message offline storage can take
// instead of a backlogged session (the types RFC 6121 §8.5.2 stores).
func divertable(el *stream.Element) bool {
	if el.Local != "message" {
		return false
	}
	switch el.Get("type") {
	case "", "normal", "chat":
		return true
	}
	return false
}

// refuseLocked reports whether a session with stream management refuses el
// for being backlogged (see highUnacked).
func (s *Session) refuseLocked(el *stream.Element) bool {
	if !divertable(el) {
		return false
	}
	if !s.backlogged {
		if len(s.acks.unacked) < highUnacked && s.acks.bytes < highBytes {
			return false
		}
		s.backlogged = true
		// Ask where the client is: its answer is what tells us that it
		// caught up, even if nothing more is sent to it meanwhile.
		if s.cur != nil && !s.cur.closing {
			if s.pending == nil {
				s.pending = bufPool.Get().(*[]byte)
			}
			*s.pending = append(*s.pending, "<r xmlns='urn:xmpp:sm:3'/>"...)
			s.acks.sinceReq = 0
			s.kickLocked() // no marks with stream management: nothing to re-route
		}
	}
	return true
}

// drainedLocked ends the backlogged state once the client is below the
// low-water mark and returns what to run then (nil if nothing).
func (s *Session) drainedLocked() func() {
	if !s.backlogged || s.acks == nil {
		return nil
	}
	if len(s.acks.unacked) > lowUnacked || s.acks.bytes > lowBytes {
		return nil
	}
	s.backlogged = false
	return s.drained
}

// Backlogged reports whether the session refuses chat messages until its
// client catches up.
func (s *Session) Backlogged() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backlogged
}

// requestEvery asks the client for an acknowledgement after this many
// unacknowledged stanzas, so the queue stays short.
const requestEvery = 5

type acks struct {
	out, in   uint32 // stanzas sent / handled, mod 2^32 as the XEP says
	acked     uint32 // the client's last h
	unacked   []*stream.Element
	sizes     []int32 // serialized size of each unacked stanza
	bytes     int     // their sum: what holding them costs
	resumable bool
	id        string
	sinceReq  int
}

func (a *acks) sent(el *stream.Element) bool {
	if len(a.unacked) >= MaxUnacked {
		return false
	}
	a.out++
	a.unacked = append(a.unacked, el.Copy())
	a.sizes = append(a.sizes, 0) // set by sized once serialized
	a.sinceReq++
	return true
}

// sized records the serialized size of the stanza sent last.
func (a *acks) sized(n int) {
	a.sizes[len(a.sizes)-1] = int32(n)
	a.bytes += n
}

func (a *acks) wantRequest() bool {
	if a.sinceReq >= requestEvery {
		a.sinceReq = 0
		return true
	}
	return false
}

// ErrHandledTooHigh is an acknowledgement of stanzas never sent.
var ErrHandledTooHigh = errors.New("handled-count-too-high")

// EnableAcks starts counting (XEP-0198 <enable/>). id names the session for
// resumption ("" if not resumable). It returns false if already enabled.
func (s *Session) EnableAcks(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acks != nil {
		return false
	}
	s.acks = &acks{resumable: id != "", id: id}
	return true
}

// AcksEnabled reports whether stream management is on, and the resumption
// id ("" when not resumable).
func (s *Session) AcksEnabled() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acks == nil {
		return false, ""
	}
	return true, s.acks.id
}

// Ack applies the client's handled count h.
func (s *Session) Ack(h uint32) error {
	s.mu.Lock()
	err := s.ackLocked(h)
	drained := s.drainedLocked()
	s.mu.Unlock()
	if drained != nil {
		go drained()
	}
	return err
}

func (s *Session) ackLocked(h uint32) error {
	a := s.acks
	if a == nil {
		return nil
	}
	n := h - a.acked // wraps correctly
	if n > uint32(len(a.unacked)) {
		return ErrHandledTooHigh
	}
	for i := range n {
		a.unacked[i] = nil
		a.bytes -= int(a.sizes[i])
	}
	a.unacked = a.unacked[n:]
	a.sizes = a.sizes[n:]
	if len(a.unacked) == 0 {
		a.unacked, a.sizes, a.bytes = nil, nil, 0 // let a long queue's array go
	}
	a.acked = h
	return nil
}

// CountIn counts one stanza handled from the client.
func (s *Session) CountIn() {
	s.mu.Lock()
	if s.acks != nil {
		s.acks.in++
	}
	s.mu.Unlock()
}

// InCount is the number of stanzas handled from the client (the h we send).
func (s *Session) InCount() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acks == nil {
		return 0
	}
	return s.acks.in
}

// TakeUnacked returns the stanzas sent but never acknowledged and forgets
// them (the session is ending: the caller re-routes them).
func (s *Session) TakeUnacked() []*stream.Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acks == nil {
		return nil
	}
	u := s.acks.unacked
	s.acks.unacked, s.acks.sizes, s.acks.bytes = nil, nil, 0
	return u
}

// Detach keeps the session after its connection (generation gen) died, if
// it is resumable and was not closed on purpose: stanzas sent to it are
// kept until a new connection resumes it. It returns false (and does
// nothing) for a session that cannot be resumed, or that a newer connection
// already carries.
func (s *Session) Detach(gen uint64) bool {
	s.mu.Lock()
	if s.acks == nil || !s.acks.resumable || s.ended || s.gen != gen || s.cur == nil || s.cur.purpose {
		s.mu.Unlock()
		return false
	}
	l := s.cur
	s.cur = nil
	// Everything in the queue is also in the unacknowledged list.
	putBuf(s.pending)
	s.pending = nil
	s.marks = s.marks[:0]
	s.mu.Unlock()
	if l != nil {
		s.closeLink(l)
	}
	return true
}

// Detached reports whether the session is waiting to be resumed.
func (s *Session) Detached() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur == nil
}

// Attach moves the session to conn (resumption). h is the client's count of
// stanzas it handled; what it missed is written again after prefix (the
// <resumed/> element). An old connection still attached is closed. It
// returns the new connection's generation.
func (s *Session) Attach(conn net.Conn, h uint32, prefix []byte) (uint64, error) {
	s.mu.Lock()
	if s.ended || s.acks == nil {
		s.mu.Unlock()
		return 0, errors.New("session ended")
	}
	if err := s.ackLocked(h); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	old := s.cur
	if old != nil {
		old.closing = true
	}
	s.cur = &link{conn: conn, done: make(chan struct{})}
	s.gen++
	gen := s.gen
	putBuf(s.pending)
	buf := bufPool.Get().(*[]byte)
	*buf = append((*buf)[:0], prefix...)
	for _, el := range s.acks.unacked {
		*buf = el.Append(*buf, s.ContentNS)
	}
	if len(s.acks.unacked) > 0 {
		// Its answer tells when the client caught up (see drainedLocked).
		*buf = append(*buf, "<r xmlns='urn:xmpp:sm:3'/>"...)
		s.acks.sinceReq = 0
	}
	s.pending = buf
	// Not kickLocked: the resent backlog may exceed MaxQueue (up to
	// MaxUnacked stanzas), and closing the new link for it would make
	// the session impossible to resume.
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
	// The client's h may have acknowledged the whole backlog: then no <r/>
	// was asked for, and nothing else would end the backlogged state.
	drained := s.drainedLocked()
	s.mu.Unlock()
	if old != nil {
		s.closeLink(old)
	}
	if drained != nil {
		go drained()
	}
	s.resumed() // filter.go: CSI sends what it held back
	return gen, nil
}
