// Package router knows which sessions are online for which account. It
// knows nothing of XMPP features: modules decide what goes where, the router
// answers "who is here".
package router

import (
	"errors"
	"sync"

	"github.com/hearthchat/hearth/xmppd/session"
)

// MaxResources is how many sessions one account may have at once.
const MaxResources = 10

// ErrTooMany is returned by Bind when an account has MaxResources sessions.
var ErrTooMany = errors.New("too many resources")

// Router maps accounts to their sessions.
type Router struct {
	mu    sync.RWMutex
	users map[string][]*session.Session
	count int
}

// New returns an empty router.
func New() *Router { return &Router{users: map[string][]*session.Session{}} }

// Bind adds s. A session of the same account with the same resource is
// returned as replaced: the caller closes it with a conflict error (the
// newest connection wins, as a client that lost its network reconnects).
func (r *Router) Bind(s *session.Session) (replaced *session.Session, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.users[s.User]
	for i, o := range list {
		if o.JID.Resourcepart() == s.JID.Resourcepart() {
			list[i] = s
			return o, nil
		}
	}
	if len(list) >= MaxResources {
		return nil, ErrTooMany
	}
	r.users[s.User] = append(list, s)
	r.count++
	return nil, nil
}

// Unbind removes s (if it is still the bound session for its resource).
func (r *Router) Unbind(s *session.Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.users[s.User]
	for i, o := range list {
		if o == s {
			list = append(list[:i:i], list[i+1:]...)
			if len(list) == 0 {
				delete(r.users, s.User)
			} else {
				r.users[s.User] = list
			}
			r.count--
			return true
		}
	}
	return false
}

// Sessions returns the account's sessions (a copy the caller may keep).
func (r *Router) Sessions(user string) []*session.Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	list := r.users[user]
	if len(list) == 0 {
		return nil
	}
	return append([]*session.Session(nil), list...)
}

// Session returns the session bound to user/resource.
func (r *Router) Session(user, resource string) *session.Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.users[user] {
		if s.JID.Resourcepart() == resource {
			return s
		}
	}
	return nil
}

// HasResource reports whether the account has a session with this resource.
func (r *Router) HasResource(user, resource string) bool {
	return r.Session(user, resource) != nil
}

// Count is the number of bound sessions.
func (r *Router) Count() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.count
}

// All calls fn for every session (shutdown, broadcasts).
func (r *Router) All(fn func(*session.Session)) {
	r.mu.RLock()
	var all []*session.Session
	for _, l := range r.users {
		all = append(all, l...)
	}
	r.mu.RUnlock()
	for _, s := range all {
		fn(s)
	}
}

// Available returns the sessions that sent available presence, and among
// them those with the highest non-negative priority.
func (r *Router) Available(user string) (all, top []*session.Session) {
	best := -1
	for _, s := range r.Sessions(user) {
		_, avail, prio := s.Presence()
		if !avail {
			continue
		}
		all = append(all, s)
		if prio < 0 {
			continue
		}
		switch {
		case prio > best:
			best = prio
			top = append(top[:0], s)
		case prio == best:
			top = append(top, s)
		}
	}
	return all, top
}
