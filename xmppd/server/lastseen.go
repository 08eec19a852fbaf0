package server

import (
	"time"
)

// LastSeen is when an account's last session ended. The last-activity
// module keeps it (XEP-0012) and installs it here; the admin pages show it
// through the server, so nothing outside that module reads its bucket.
type LastSeen func(user string) (time.Time, bool)

type lastSeenKey struct{}

func (s *Server) lastSeen() *installed[LastSeen] { return installedAt[LastSeen](s, lastSeenKey{}) }

// SetLastSeen installs f (the last-activity module does, once).
func (s *Server) SetLastSeen(f LastSeen) { s.lastSeen().set(f) }

// LastSeenOf is when user's last session ended; false when not known (no
// module, or the account never logged out).
func (s *Server) LastSeenOf(user string) (time.Time, bool) {
	if f := s.lastSeen().get(); f != nil {
		return f(user)
	}
	return time.Time{}, false
}
