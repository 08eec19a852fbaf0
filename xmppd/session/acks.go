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

// requestEvery asks the client for an acknowledgement after this many
// unacknowledged stanzas, so the queue stays short.
const requestEvery = 5

type acks struct {
	out, in   uint32 // stanzas sent / handled, mod 2^32 as the XEP says
	acked     uint32 // the client's last h
	unacked   []*stream.Element
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
	a.sinceReq++
	return true
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
	defer s.mu.Unlock()
	return s.ackLocked(h)
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
	}
	a.unacked = a.unacked[n:]
	if len(a.unacked) == 0 {
		a.unacked = nil // let a long queue's array go
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
	s.acks.unacked = nil
	return u
}

// Detach keeps the session after its connection died, if it is resumable:
// stanzas sent to it are kept until a new connection resumes it. It returns
// false (and does nothing) for a session that cannot be resumed.
func (s *Session) Detach() bool {
	s.mu.Lock()
	if s.acks == nil || !s.acks.resumable || s.ended {
		s.mu.Unlock()
		return false
	}
	l := s.cur
	s.cur = nil
	if s.pending != nil {
		// Everything in it is also in the unacknowledged queue.
		*s.pending = (*s.pending)[:0]
	}
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
	buf := bufPool.Get().(*[]byte)
	*buf = append((*buf)[:0], prefix...)
	for _, el := range s.acks.unacked {
		*buf = el.Append(*buf, s.ContentNS)
	}
	s.pending = buf
	s.kickLocked()
	s.mu.Unlock()
	if old != nil {
		s.closeLink(old)
	}
	return gen, nil
}
