package server

import (
	"github.com/hearthchat/hearth/xmppd/session"
)

// Resumer finds a hibernating session of user by its stream-management id
// (XEP-0198 resumption); the smacks module provides it.
type Resumer func(user, id string) *session.Session

// SetResumer installs the resumption lookup.
func (s *Server) SetResumer(r Resumer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resumer = r
}

// Resume looks up a session to resume; nil if none (or no module).
func (s *Server) Resume(user, id string) *session.Session {
	s.mu.RLock()
	r := s.resumer
	s.mu.RUnlock()
	if r == nil {
		return nil
	}
	return r(user, id)
}

// OnHibernate registers fn to run when a session lost its connection but
// stays for resumption (the smacks module starts its expiry timer).
func (s *Server) OnHibernate(fn func(*session.Session)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hibernate = append(s.hibernate, fn)
}

// Hibernated is called by the transport after Detach succeeded.
func (s *Server) Hibernated(sess *session.Session) { s.runHooks(&s.hibernate, sess, nil) }

// EndSession ends a session for good: it leaves the router, modules see it
// close (presence goes unavailable, unacknowledged stanzas are re-routed),
// and it takes nothing more. Shutdown, the connection's end and the
// resumption timer may all call it at once: the session's TryEnd lets
// exactly one of them run the close hooks (issue 9, item 4: checking Ended
// and then acting ran them twice).
func (s *Server) EndSession(sess *session.Session) {
	if !sess.TryEnd() {
		return
	}
	s.endSession(sess)
}

// EndHibernated ends a session still waiting for resumption on generation
// gen (the resumption timer); it does nothing and returns false if the
// session was resumed or ended meanwhile.
func (s *Server) EndHibernated(sess *session.Session, gen uint64) bool {
	if !sess.TryEndDetached(gen) {
		return false
	}
	s.endSession(sess)
	return true
}

// EndSessionAt ends a session if it is still at generation gen: the
// connection that carried it ended and it was not resumed on another.
func (s *Server) EndSessionAt(sess *session.Session, gen uint64) bool {
	if !sess.TryEndAt(gen) {
		return false
	}
	s.endSession(sess)
	return true
}

func (s *Server) endSession(sess *session.Session) {
	s.Router.Unbind(sess)
	s.Closed(sess)
}
