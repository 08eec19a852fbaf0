// Package server is the hub between transports and feature modules: it
// takes a stanza from a session, decides where it is addressed, and fires
// the hooks modules registered. It implements only the addressing rules of
// RFC 6120/6121 that every feature depends on; every feature (roster,
// presence, offline storage, disco, …) lives in its own package under
// xmppd/mod and plugs in through Register.
//
// # The module model
//
// Like Prosody's plugins, a module is one package with one Register
// function, and modules never import each other (checked by
// TestModulesDoNotImportEachOther in package xmppd). What they share goes
// through the server, in three ways:
//
//   - State: a module keeps its per-server state on the server, under a
//     key only it knows (State; modstate.go), never in package variables,
//     so that two servers in one process (tests) do not mix.
//   - Events: typed events declared here (Event; events.go). The module
//     that causes one fires it, others subscribe: presence fires Available
//     and offline delivers stored messages; invites fires
//     AccountRegistered and roster pre-subscribes the inviter.
//   - Shared rules: a rule several modules need lives in the module that
//     owns the data, behind a small interface declared here and installed
//     on the server. The roster owns subscriptions and implements Contacts
//     (contacts.go): who may see whose presence, who gets a broadcast,
//     whom to probe, how a subscription stanza changes the state. Presence,
//     disco and last activity ask Server.Contacts.
//
// Hooks (Hook, HandleIQ, OnBound, …) stay for stanzas and session life,
// where the server itself is the one that fires.
package server

import (
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/router"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Stanza is a stanza in flight with its addresses parsed.
type Stanza struct {
	El   *stream.Element
	From jid.JID // stamped by the server for local senders
	To   jid.JID // for iqs to "" this is the sender's bare JID
	// Origin is the local session it came from; nil for stanzas the
	// server generates or receives from other servers.
	Origin *session.Session
	// refused, when set, takes the bounce of a stanza the server itself
	// sent instead of routing it back (RouteReport).
	refused func(error)
	// ser is the element in serialized form, given by a hook for the
	// delivery (serialized.go), and what the element looked like then.
	ser Serialized
	sig serSig
}

// Type is the stanza's type attribute.
func (st *Stanza) Type() string { return st.El.Get("type") }

// Hook names. Handlers run in priority order (highest first) until one
// returns true ("handled, stop").
const (
	// MessageOut: a message from a local client, before routing (carbons
	// "sent" copies, archiving, blocking). Return true to stop it.
	MessageOut = "message-out"
	// MessageBare: a message for a local account's bare JID (or a full JID
	// with no such resource, for types that fall back). The core's default
	// delivers to the available resources or fires MessageOffline.
	MessageBare = "message-bare"
	// MessageFull: a message for a local, online full JID.
	MessageFull = "message-full"
	// MessageOffline: a chat/normal message nobody online can receive.
	// Return true once it is stored durably.
	MessageOffline = "message-offline"
	// PresenceOut: presence from a local client (broadcast if To is empty,
	// else directed or a subscription request).
	PresenceOut = "presence-out"
	// PresenceIn: presence for a local account.
	PresenceIn = "presence-in"
	// MessageRemote, PresenceRemote, IQRemote: for another domain (s2s).
	StanzaRemote = "stanza-remote"
)

// Hook is a stanza hook handler.
type Hook func(st *Stanza) bool

type hook struct {
	prio int
	fn   Hook
}

// Target says who an iq handler answers for.
type Target int

const (
	// ToServer: iqs addressed to the domain itself.
	ToServer Target = iota
	// ToAccount: iqs addressed to an account's bare JID (or with no 'to':
	// the sender's own account).
	ToAccount
)

// IQHandler answers an iq get or set. It returns the payload of the result
// (nil for an empty result) or an error (a *StanzaError, or any other error,
// which becomes internal-server-error).
type IQHandler func(st *Stanza) (*stream.Element, error)

type iqKey struct {
	target Target
	typ    string
	space  string
	local  string
}

// Identity is a disco identity.
type Identity struct{ Category, Type, Name string }

// Server is one XMPP domain's hub.
type Server struct {
	Domain string
	domain jid.JID
	Store  *store.Store
	Router *router.Router
	Log    *slog.Logger

	mu         sync.RWMutex
	hooks      map[string][]hook
	iq         map[iqKey]IQHandler
	features   map[Target][]string
	identities []Identity
	streamFeat []func(*session.Session) *stream.Element
	nonzas     map[string]func(*session.Session, *stream.Element)
	bound      []func(*session.Session)
	closed     []func(*session.Session)
	deleted    []func(user string)
	disco      []func(target Target, owner string) []*stream.Element // extra disco#info (forms)
	pre        preAuthReg
	resumer    Resumer
	hibernate  []func(*session.Session)
	state      modState // modules' state (modstate.go)
}

// New creates a server for domain.
func New(domain string, st *store.Store, log *slog.Logger) (*Server, error) {
	d, err := jid.Parse(domain)
	if err != nil {
		return nil, err
	}
	return &Server{
		Domain: d.Domainpart(), domain: d, Store: st, Router: router.New(), Log: log,
		hooks: map[string][]hook{}, iq: map[iqKey]IQHandler{}, features: map[Target][]string{},
		nonzas: map[string]func(*session.Session, *stream.Element){},
	}, nil
}

// JID is the domain's JID.
func (s *Server) JID() jid.JID { return s.domain }

// Hook registers fn for event at priority prio.
func (s *Server) Hook(event string, prio int, fn Hook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := append(s.hooks[event], hook{prio, fn})
	sort.SliceStable(l, func(i, j int) bool { return l[i].prio > l[j].prio })
	s.hooks[event] = l
}

// Fire runs event's handlers until one returns true.
func (s *Server) Fire(event string, st *Stanza) bool {
	s.mu.RLock()
	l := s.hooks[event]
	s.mu.RUnlock()
	for _, h := range l {
		if h.fn(st) {
			return true
		}
	}
	return false
}

// HandleIQ registers h for iqs of type typ ("get" or "set") whose payload is
// space+local, addressed to target.
func (s *Server) HandleIQ(target Target, typ, space, local string, h IQHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.iq[iqKey{target, typ, space, local}] = h
}

// AddFeature advertises a disco#info feature of the server or of accounts.
func (s *Server) AddFeature(target Target, ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.features[target] = append(s.features[target], ns)
}

// AddIdentity adds a disco identity of the server.
func (s *Server) AddIdentity(id Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identities = append(s.identities, id)
}

// AddDiscoExtension adds extra disco#info children (XEP-0128 forms, e.g.
// XEP-0157 contact addresses).
func (s *Server) AddDiscoExtension(fn func(target Target, owner string) []*stream.Element) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disco = append(s.disco, fn)
}

// Features lists the disco#info features for target, sorted.
func (s *Server) Features(target Target) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f := append([]string(nil), s.features[target]...)
	sort.Strings(f)
	return f
}

// Identities lists the server's identities.
func (s *Server) Identities() []Identity {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]Identity(nil), s.identities...)
}

// DiscoExtensions returns the extra disco#info elements for target.
func (s *Server) DiscoExtensions(target Target, owner string) []*stream.Element {
	s.mu.RLock()
	fns := s.disco
	s.mu.RUnlock()
	var out []*stream.Element
	for _, fn := range fns {
		out = append(out, fn(target, owner)...)
	}
	return out
}

// AddStreamFeature adds an element to the stream features offered after
// authentication (stream management, CSI, roster versioning, …).
func (s *Server) AddStreamFeature(fn func(*session.Session) *stream.Element) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streamFeat = append(s.streamFeat, fn)
}

// StreamFeatures returns the post-authentication features for sess (which
// is nil before bind).
func (s *Server) StreamFeatures(sess *session.Session) []*stream.Element {
	s.mu.RLock()
	fns := s.streamFeat
	s.mu.RUnlock()
	var out []*stream.Element
	for _, fn := range fns {
		if el := fn(sess); el != nil {
			out = append(out, el)
		}
	}
	return out
}

// HandleNonza registers a handler for top-level elements in namespace ns
// from bound sessions (XEP-0198 <r/>, XEP-0352 <active/>, …).
func (s *Server) HandleNonza(ns string, fn func(*session.Session, *stream.Element)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonzas[ns] = fn
}

// Nonza returns the handler for namespace ns.
func (s *Server) Nonza(ns string) func(*session.Session, *stream.Element) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nonzas[ns]
}

// OnBound registers fn to run when a session has bound a resource.
func (s *Server) OnBound(fn func(*session.Session)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bound = append(s.bound, fn)
}

// OnClosed registers fn to run when a bound session ends.
func (s *Server) OnClosed(fn func(*session.Session)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = append(s.closed, fn)
}

// OnAccountDeleted registers fn to remove a module's data of a deleted account.
func (s *Server) OnAccountDeleted(fn func(user string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted = append(s.deleted, fn)
}

// Bound is called by the transport once a session is bound.
func (s *Server) Bound(sess *session.Session) {
	s.watch(sess) // delivery.go: what it cannot write is routed again
	s.runHooks(&s.bound, sess, sess)
}

// Closed is called by the transport when a bound session ends.
func (s *Server) Closed(sess *session.Session) { s.runHooks(&s.closed, sess, sess) }

// runHooks runs a list of session hooks; a panicking hook ends blame (nil:
// nobody) and the others still run.
func (s *Server) runHooks(hooks *[]func(*session.Session), sess, blame *session.Session) {
	s.mu.RLock()
	l := *hooks
	s.mu.RUnlock()
	for _, fn := range l {
		s.safely(blame, func() { fn(sess) })
	}
}

// DeleteAccount removes an account and every module's data of it.
func (s *Server) DeleteAccount(user string) error {
	if err := s.Store.DeleteAccount(user); err != nil {
		return err
	}
	for _, sess := range s.Router.Sessions(user) {
		sess.CloseWithError("not-authorized", "account deleted")
	}
	s.mu.RLock()
	l := s.deleted
	s.mu.RUnlock()
	for _, fn := range l {
		fn(user)
	}
	return nil
}

// safely runs fn, turning a panic into a log line and the end of only the
// session it concerned.
func (s *Server) safely(sess *session.Session, fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.Log.Error("handler panic", "panic", r, "session", sessName(sess), "stack", string(debug.Stack()))
			if sess != nil {
				sess.CloseWithError("internal-server-error", "")
			}
			ok = false
		}
	}()
	fn()
	return true
}

func sessName(s *session.Session) string {
	if s == nil {
		return ""
	}
	return s.JID.String()
}

// IsLocal reports whether j is our domain or an account on it.
func (s *Server) IsLocal(j jid.JID) bool {
	return strings.EqualFold(j.Domainpart(), s.Domain)
}
