package server

import (
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Delivery guarantees (issue 9, item 2): a message the server accepted ends
// in exactly one of delivered, stored (MessageOffline) or bounced to its
// sender. Send's refusal is never ignored (route.go falls through to the
// next resource, then storage, then a bounce), and what a session accepted
// but could not write comes back here through Redeliver.

// Drained fires when a session that refused chat messages for being
// backlogged (stream management, past its high-water mark: see
// session/acks.go) has caught up. Those messages went to offline storage;
// the offline module hands them over now instead of at the next login.
// Fired on a goroutine of its own.
var Drained = NewEvent[*session.Session]("drained")

// watch connects a newly bound session's failure paths to the server:
// messages it could not write are routed again, and its catching up fires
// Drained.
func (s *Server) watch(sess *session.Session) {
	sess.SetReroute(func(els []*stream.Element) {
		// Counted before the goroutine starts, so that shutdown can wait
		// for it before the database closes (WaitRedeliveries).
		f := s.redeliveries()
		f.add()
		go func() {
			defer f.done()
			s.Redeliver(sess, els)
		}()
	})
	sess.SetDrained(func() { s.safely(nil, func() { Drained.Fire(s, sess) }) })
}

type redeliveriesKey struct{}

// inflight counts redeliveries under way. Not a sync.WaitGroup: a session
// may hand messages back while shutdown is already waiting, and a
// WaitGroup forbids an Add from zero concurrent with Wait.
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0; nil while n == 0
}

func (f *inflight) add() {
	f.mu.Lock()
	if f.n == 0 {
		f.zero = make(chan struct{})
	}
	f.n++
	f.mu.Unlock()
}

func (f *inflight) done() {
	f.mu.Lock()
	if f.n--; f.n == 0 {
		close(f.zero)
		f.zero = nil
	}
	f.mu.Unlock()
}

func (s *Server) redeliveries() *inflight {
	return State(s, redeliveriesKey{}, func() *inflight { return new(inflight) })
}

// WaitRedeliveries waits (up to timeout) until messages that sessions
// handed back (queue overflow, failed write) have been routed again: at
// shutdown, once the connections are closed, so that they reach storage
// before it closes. It reports whether none is left.
func (s *Server) WaitRedeliveries(timeout time.Duration) bool {
	f := s.redeliveries()
	deadline := time.After(timeout)
	for {
		f.mu.Lock()
		zero := f.zero
		f.mu.Unlock()
		if zero == nil {
			return true
		}
		select {
		case <-zero:
		case <-deadline:
			return false
		}
	}
}

// Redeliver routes again stanzas sess accepted but its client never got
// (nor, with stream management, acknowledged): messages go to the
// account's other resources or to offline storage, or bounce; an iq
// request gets an error back so that the asker does not wait forever.
// Error, groupchat and headline messages are not routed again (RFC 6121
// §8.5.2 would drop them for an account without resources too).
func (s *Server) Redeliver(sess *session.Session, els []*stream.Element) {
	if len(els) == 0 {
		return
	}
	bare := sess.JID.Bare()
	others, _ := s.Router.Available(sess.User)
	for _, el := range els {
		switch el.Local {
		case "message":
			switch el.Get("type") {
			case "error", "groupchat", "headline":
				continue
			}
			if el.Get("to") != sess.JID.String() && sharedTop(others, sess) {
				// Sent to the bare JID while another resource had at
				// least this one's priority: that one got its own copy.
				continue
			}
			if SyncsFromArchive(sess) && archivedFor(el, bare.String()) {
				// Its client reads the archive, where this message is
				// (committed before it was sent): like Prosody's
				// mod_smacks for clients that requested MAM, it is not
				// stored offline to be sent a second time.
				continue
			}
			st := &Stanza{El: el, To: bare}
			if f, err := jid.Parse(el.Get("from")); err == nil {
				st.From = f
			}
			el.Set("to", bare.String())
			s.safely(nil, func() { s.DeliverBare(st) })
		case "iq":
			if t := el.Get("type"); t == "get" || t == "set" {
				s.Route(ErrorReply(el, ErrServiceUnavailable))
			}
		}
	}
}

// sharedTop reports whether another available resource ranks with sess
// for bare-JID messages (non-negative priority at least sess's), so it was
// given the same messages. Priorities that changed since cannot be known;
// this errs towards a duplicate rather than a loss only when they rose.
func sharedTop(others []*session.Session, sess *session.Session) bool {
	for _, x := range others {
		if x != sess && x.Priority() >= 0 && x.Priority() >= sess.Priority() && holdsCopy(x) {
			return true
		}
	}
	return false
}

// holdsCopy reports whether x still has (or will re-route) what it was
// given: with stream management it keeps it until acknowledged; without,
// a closing session re-routes its own unwritten messages, so two resources
// overflowing at once must not each count on the other.
func holdsCopy(x *session.Session) bool {
	if x.Ended() {
		return false
	}
	on, _ := x.AcksEnabled()
	return on || !x.Closing()
}

// ArchivePage is the payload of ArchiveSent.
type ArchivePage struct {
	User string
	// IDs are the archive's stanza-ids (by the account's bare JID) of the
	// messages the page carried.
	IDs []string
}

// ArchiveSent fires after a session read a page of its own account's
// message archive (XEP-0313). The messages it carried have reached a
// client that syncs from the archive: the offline module deletes its
// copies of them, so that the same client is not sent them a second time
// at its initial presence (see mod/mam's package doc, "Offline storage
// and the archive agree"). Fired on the asking session's reader.
var ArchiveSent = NewEvent[ArchivePage]("archive-sent")

type archiveSyncKey struct{}

// MarkArchiveSync records that sess's client reads its account's message
// archive (it queried it: mod/mam).
func MarkArchiveSync(sess *session.Session) { sess.SetValue(archiveSyncKey{}, true) }

// SyncsFromArchive reports whether sess's client reads its account's
// message archive.
func SyncsFromArchive(sess *session.Session) bool { return sess.Value(archiveSyncKey{}) != nil }

// archivedFor reports whether el carries the stanza-id of by's archive
// (XEP-0359; mod/mam adds it once the message is in the archive, and
// strips forged ones).
func archivedFor(el *stream.Element, by string) bool {
	for _, c := range el.Children() {
		if c.Space == "urn:xmpp:sid:0" && c.Local == "stanza-id" && c.Get("by") == by {
			return true
		}
	}
	return false
}
