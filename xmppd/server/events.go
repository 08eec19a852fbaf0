package server

import (
	"sync"

	"github.com/hearthchat/hearth/xmppd/session"
)

// Event is a typed server event (see the package doc, "The module
// model"): one module fires it, any number of others subscribe on a
// server with On. The payload type T is declared here, next to the event,
// so neither side imports the other: offline reacts to presence's
// Available without importing presence.
type Event[T any] struct{ name string }

// NewEvent declares an event. Events several modules share are declared in
// this package; a module may declare its own for optional listeners.
func NewEvent[T any](name string) *Event[T] { return &Event[T]{name: name} }

func (e *Event[T]) String() string { return e.name }

type listeners[T any] struct {
	mu  sync.RWMutex
	fns []func(T)
}

func (e *Event[T]) listeners(s *Server) *listeners[T] {
	return State(s, e, func() *listeners[T] { return new(listeners[T]) })
}

// On subscribes fn to e on s (from a module's Register).
func (e *Event[T]) On(s *Server, fn func(T)) {
	l := e.listeners(s)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fns = append(l.fns, fn)
}

// Fire runs e's listeners on s in the order they subscribed, on the
// caller's goroutine: a listener that must not hold the caller up (a
// session's reader) starts its own work. A panic is the caller's, like one
// in a hook (FromClient ends only the session concerned).
func (e *Event[T]) Fire(s *Server, v T) {
	l := e.listeners(s)
	l.mu.RLock()
	fns := l.fns
	l.mu.RUnlock()
	for _, fn := range fns {
		fn(v)
	}
}

// Availability is the payload of Available.
type Availability struct {
	Session *session.Session
	// Initial is true for the session's first available presence.
	Initial bool
}

// Available fires after a session sent available presence without 'to'
// and the presence module broadcast it (offline messages are delivered
// then, XEP-0160).
var Available = NewEvent[Availability]("available")

// Registration is the payload of AccountRegistered.
type Registration struct {
	User string
	// Inviter is the account whose invite was redeemed ("" for invites
	// made by the box's admin tools).
	Inviter string
}

// AccountRegistered fires after a member's account was created: by in-band
// registration with an invite (the roster module then pre-subscribes the
// member and the inviter: DESIGN.md, "An invite"), on the invite page, by
// the setup wizard or by the admin API (Inviter "").
var AccountRegistered = NewEvent[Registration]("account-registered")

// Grant is the payload of SubscriptionGranted.
type Grant struct {
	Owner   string // the local account whose presence Contact may now see
	Contact string // a bare JID
}

// SubscriptionGranted fires after Owner granted Contact a subscription to
// Owner's presence (an approval, a pre-approved request, Befriend), once
// the change is stored: what only presence subscribers may see is now
// Contact's (PEP sends Owner's last items, XEP-0163 §4.3.2). The server
// fires it from the installed Contacts (contacts.go), whichever module
// changed the subscription.
var SubscriptionGranted = NewEvent[Grant]("subscription-granted")

// Bookmark is the payload of OfferBookmark: a group chat the server
// suggests to an account.
type Bookmark struct {
	User     string
	Room     string // bare JID
	Name     string
	Autojoin bool
	// Nick is the nickname to join with: a client auto-joining a
	// bookmark without one may stop and ask (Converse 14 did).
	Nick string
}

// OfferBookmark asks for Room in User's group chat bookmarks (the PEP
// module listens: XEP-0402, through its normal storage path). An offer
// is made once per account and room: a bookmark the member has is left
// as it is, and one the member removed is not added again. The xmppd
// package offers the club's default room.
var OfferBookmark = NewEvent[Bookmark]("offer-bookmark")
