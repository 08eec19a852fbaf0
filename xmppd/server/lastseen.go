package server

import (
	"sync/atomic"
	"time"
)

// LastSeen is when an account's last session ended. The last-activity
// module keeps it (XEP-0012) and installs it here; the admin pages show it
// through the server, so nothing outside that module reads its bucket.
type LastSeen func(user string) (time.Time, bool)

type lastSeenKey struct{}

func (s *Server) lastSeen() *atomic.Value {
	return State(s, lastSeenKey{}, func() *atomic.Value { return new(atomic.Value) })
}

// SetLastSeen installs f (the last-activity module does, once).
func (s *Server) SetLastSeen(f LastSeen) { s.lastSeen().Store(f) }

// LastSeenOf is when user's last session ended; false when not known (no
// module, or the account never logged out).
func (s *Server) LastSeenOf(user string) (time.Time, bool) {
	if f, _ := s.lastSeen().Load().(LastSeen); f != nil {
		return f(user)
	}
	return time.Time{}, false
}
