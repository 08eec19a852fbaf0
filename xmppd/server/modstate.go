package server

import (
	"sync"
	"sync/atomic"
)

// modState is what modules keep on a server (see the package doc, "The
// module model"): one value per key, made on first use. Before it,
// presence and disco kept package maps keyed by *Server and invites a
// process-wide hook list, so two servers in one test binary (or a module
// registered twice) shared or leaked state.
type modState struct {
	mu sync.Mutex
	m  map[any]any
}

// State returns the value kept on s under key, making it with init the
// first time. key is best an unexported type or pointer of the module
// (like a context key), so no other package can reach the value; T is
// usually a pointer to the module's state struct. init runs at most once
// per server and key, with no lock of the server held.
func State[T any](s *Server, key any, init func() T) T {
	s.state.mu.Lock()
	if v, ok := s.state.m[key]; ok {
		s.state.mu.Unlock()
		return v.(T)
	}
	s.state.mu.Unlock()
	v := init()
	s.state.mu.Lock()
	defer s.state.mu.Unlock()
	if old, ok := s.state.m[key]; ok {
		// Another goroutine made it first: keep one.
		return old.(T)
	}
	if s.state.m == nil {
		s.state.m = map[any]any{}
	}
	s.state.m[key] = v
	return v
}

// installed is where one module installs what others reach through the
// server (Contacts, PrivateStorage, VCard4, LastSeen), read without a
// lock on every use.
type installed[T any] struct{ p atomic.Pointer[T] }

// installedAt is s's slot for key.
func installedAt[T any](s *Server, key any) *installed[T] {
	return State(s, key, func() *installed[T] { return new(installed[T]) })
}

func (i *installed[T]) set(v T) { i.p.Store(&v) }

// get is the installed value; T's zero value (nil) when none is.
func (i *installed[T]) get() (v T) {
	if p := i.p.Load(); p != nil {
		v = *p
	}
	return v
}
