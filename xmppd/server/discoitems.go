package server

import (
	"slices"
	"sync"
)

// DiscoItem is an entry of the server's disco#items (XEP-0030): a
// component such as the upload service or the group-chat host.
type DiscoItem struct{ JID, Name string }

type discoItemsKey struct{}

type discoItems struct {
	mu sync.Mutex
	l  []DiscoItem
}

func (s *Server) discoItems() *discoItems {
	return State(s, discoItemsKey{}, func() *discoItems { return new(discoItems) })
}

// AddDiscoItem lists a service in the server's disco#items. It lives here
// beside AddFeature, not in the disco module, so that the module offering
// the service does not import disco.
func (s *Server) AddDiscoItem(it DiscoItem) {
	d := s.discoItems()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.l = append(d.l, it)
}

// DiscoItems lists the server's disco#items entries.
func (s *Server) DiscoItems() []DiscoItem {
	d := s.discoItems()
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.l)
}
