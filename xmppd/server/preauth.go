package server

import (
	"sync"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// PreAuth is a connection that has TLS but no account yet. Modules that
// work before login (in-band registration with an invite token) keep their
// per-connection state in it.
type PreAuth struct {
	IP string

	mu   sync.Mutex
	vals map[any]any
}

// Value returns a module's per-connection state.
func (p *PreAuth) Value(key any) any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.vals[key]
}

// SetValue sets a module's per-connection state.
func (p *PreAuth) SetValue(key, v any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.vals == nil {
		p.vals = map[any]any{}
	}
	p.vals[key] = v
}

// PreAuthIQHandler answers an iq before authentication.
type PreAuthIQHandler func(pa *PreAuth, iq *stream.Element) (*stream.Element, error)

type preAuthReg struct {
	handlers map[string]PreAuthIQHandler
	features []*stream.Element
}

// HandlePreAuthIQ registers h for iqs with a payload in namespace ns sent
// before authentication (over TLS only).
func (s *Server) HandlePreAuthIQ(ns string, h PreAuthIQHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pre.handlers == nil {
		s.pre.handlers = map[string]PreAuthIQHandler{}
	}
	s.pre.handlers[ns] = h
}

// AddPreAuthFeature advertises a stream feature next to the SASL mechanisms.
func (s *Server) AddPreAuthFeature(el *stream.Element) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pre.features = append(s.pre.features, el)
}

// PreAuthFeatures lists the features offered before authentication.
func (s *Server) PreAuthFeatures() []*stream.Element {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*stream.Element(nil), s.pre.features...)
}

// PreAuthIQ answers an iq sent before authentication; ok is false when no
// module handles its namespace.
func (s *Server) PreAuthIQ(pa *PreAuth, iq *stream.Element) (reply *stream.Element, ok bool) {
	payload := iq.FirstChild()
	if payload == nil {
		return ErrorReply(iq, ErrBadRequest), true
	}
	s.mu.RLock()
	h := s.pre.handlers[payload.Space]
	s.mu.RUnlock()
	if h == nil {
		return nil, false
	}
	var res *stream.Element
	var err error
	if !s.safely(nil, func() { res, err = h(pa, iq) }) {
		err = ErrInternal
	}
	if err != nil {
		return ErrorReply(iq, err), true
	}
	r := stream.New(stream.NSClient, "iq", "type", "result", "id", iq.Get("id"))
	return r.Add(res), true
}
