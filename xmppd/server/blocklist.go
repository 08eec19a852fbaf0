package server

import (
	"sync/atomic"

	"mellium.im/xmpp/jid"
)

// Blocklist is the members' XEP-0191 block lists, installed by the
// blocking module (SetBlocklist). Routed stanzas are filtered by that
// module's hooks; a module that writes to a member's sessions directly
// instead of routing (PEP notifications) asks Blocks itself, since no
// hook sees those stanzas.
type Blocklist interface {
	// Blocks reports whether user blocked j (or j's account or domain).
	Blocks(user string, j jid.JID) bool
}

type blocklistKey struct{}

func (s *Server) blocklist() *atomic.Pointer[Blocklist] {
	return State(s, blocklistKey{}, func() *atomic.Pointer[Blocklist] { return new(atomic.Pointer[Blocklist]) })
}

// SetBlocklist installs the block lists (the blocking module does, once).
func (s *Server) SetBlocklist(b Blocklist) { s.blocklist().Store(&b) }

// Blocks reports whether user blocked j; without a blocking module nobody
// blocks anybody.
func (s *Server) Blocks(user string, j jid.JID) bool {
	if b := s.blocklist().Load(); b != nil {
		return (*b).Blocks(user, j)
	}
	return false
}
