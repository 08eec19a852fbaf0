package session

import "github.com/hearthchat/hearth/xmppd/stream"

// Filter decides what happens to a stanza offered to the session before it
// is queued. send is the session's own queueing (counted by stream
// management, refused when the session cannot take it); the filter calls
// it for stanzas that go out now, or later for stanzas it held back, and
// returns what the caller of Send should learn: true if the stanza is
// taken care of (queued or held), false to make the caller route it
// elsewhere.
//
// Why a hook here and not a server hook: client state indication (XEP-0352,
// mod/csi) must see every stanza for the session — presence broadcasts,
// messages, pushes from any module — and hold some of them back without
// stream management counting them (XEP-0198's h counts what was sent, and
// a held stanza was not). Only Send sees all of them, and only a filter
// that runs before the counting can keep them out of it.
//
// A filter holds back only what it can answer for: stanzas it holds are
// its own to send later or hand back for routing when the session ends.
type Filter interface {
	// Offer is called by Send for every stanza.
	Offer(el *stream.Element, send func(*stream.Element) bool) bool
	// Resumed is called after stream management moved the session to a
	// new connection (Attach), once what the client missed is queued:
	// XEP-0352 says client state is not kept across resumption, so CSI
	// sends what it held, after the resent stanzas (which are older).
	Resumed(send func(*stream.Element) bool)
}

// SetFilter installs f (nil removes it). One filter per session: the
// module that owns it decides what it holds.
func (s *Session) SetFilter(f Filter) {
	if f == nil {
		s.filter.Store(nil)
		return
	}
	s.filter.Store(&f)
}

// resumed tells the filter that Attach moved the session (call without
// s.mu held).
func (s *Session) resumed() {
	if f := s.filter.Load(); f != nil {
		(*f).Resumed(s.send)
	}
}

// Send queues a stanza, through the session's filter if one is set. It
// returns false if the session cannot take it (ending, closing without
// stream management, its queue overflowed, or, with stream management, too
// far behind for another chat message): the caller then tries elsewhere.
func (s *Session) Send(el *stream.Element) bool { return s.SendSerialized(el, nil) }

// SendSerialized is Send with el's serialization already made (nil: made
// here): wire is el appended with its namespace explicit
// (Element.Append(b, "")), which the session queues instead of
// serializing el again. A session with a filter (CSI) offers el to it.
func (s *Session) SendSerialized(el *stream.Element, wire []byte) bool {
	if f := s.filter.Load(); f != nil {
		return (*f).Offer(el, s.send)
	}
	return s.sendWith(el, wire)
}

// SendDirect queues a stanza without the filter: for the filter itself,
// sending what it held outside Offer and Resumed (CSI's <active/>).
func (s *Session) SendDirect(el *stream.Element) bool { return s.send(el) }
