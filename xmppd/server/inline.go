package server

import (
	"sync"

	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Inline features: what a client may ask for inside its SASL2 login
// (XEP-0388 <authenticate/>) and its Bind 2 request (XEP-0386 <bind/>), so
// that one round trip logs in, binds, enables carbons and stream
// management, or resumes. The transport (c2s) negotiates SASL2 and Bind 2
// but knows no feature: modules register here, as they register stream
// features, and c2s asks.

// BindFeature is a feature a client may turn on inside Bind 2.
type BindFeature struct {
	// Var is the feature's namespace, offered as <feature var='…'/> in
	// the Bind 2 <inline/> list; children of <bind/> in it go to Handle.
	Var string
	// Handle turns the feature on for sess, which is authenticated and
	// about to be bound (not yet reachable by routing). What it sends with
	// sess.SendRaw lands inside <bound/> (XEP-0198's <enabled/>).
	Handle func(sess *session.Session, req *stream.Element)
}

type inlines struct {
	mu   sync.Mutex
	bind []BindFeature
	auth []*stream.Element
}

type inlinesKey struct{}

func (s *Server) inlines() *inlines {
	return State(s, inlinesKey{}, func() *inlines { return new(inlines) })
}

// AddBindFeature offers f inside Bind 2.
func (s *Server) AddBindFeature(f BindFeature) {
	in := s.inlines()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.bind = append(in.bind, f)
}

// BindFeatures are the features offered inside Bind 2. Carbons are among
// them when a module listens to EnableCarbons (the carbons module
// subscribed before this API existed; the event stays its interface).
func (s *Server) BindFeatures() []BindFeature {
	in := s.inlines()
	in.mu.Lock()
	out := append([]BindFeature(nil), in.bind...)
	in.mu.Unlock()
	l := EnableCarbons.listeners(s)
	l.mu.RLock()
	carbons := len(l.fns) > 0
	l.mu.RUnlock()
	if carbons {
		out = append(out, BindFeature{Var: nsCarbons, Handle: func(sess *session.Session, req *stream.Element) {
			if req.Local == "enable" {
				EnableCarbons.Fire(s, sess)
			}
		}})
	}
	return out
}

// nsCarbons is XEP-0280's namespace (its <enable/> inside Bind 2).
const nsCarbons = "urn:xmpp:carbons:2"

// AddAuthInline offers el inside the SASL2 <authentication/> feature's
// <inline/> list: stream management offers <sm/>, and c2s answers a
// <resume/> inside <authenticate/> through the Resumer.
func (s *Server) AddAuthInline(el *stream.Element) {
	in := s.inlines()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.auth = append(in.auth, el)
}

// AuthInlines are the elements offered inside SASL2's <inline/>.
func (s *Server) AuthInlines() []*stream.Element {
	in := s.inlines()
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]*stream.Element(nil), in.auth...)
}
