package server

import (
	"mellium.im/xmpp/jid"
)

// Contacts is the rule book of who shares presence with whom (RFC 6121
// §3): the roster module owns the data and implements it (SetContacts from
// its Register); presence, disco, last activity and later PEP reach it
// through Server.Contacts instead of importing the roster package. Its
// methods must cost the same for a roster of long names and many groups as
// for a plain one (broadcasts and probes run for every presence a client
// sends): they read a small index, never the full items.
type Contacts interface {
	// Relation is owner's subscription state with contact (a bare JID).
	Relation(owner, contact string) (Relation, error)
	// MayViewPresence reports whether viewer may see owner's presence and
	// what goes with it (disco#info of the account, last activity): the
	// owner itself, or a contact with a subscription from the owner.
	MayViewPresence(owner string, viewer jid.JID) bool
	// Subscribers calls fn with every contact that receives owner's
	// presence (subscription from or both).
	Subscribers(owner string, fn func(contact string)) error
	// Subscriptions calls fn with every contact whose presence owner
	// receives (subscription to or both).
	Subscriptions(owner string, fn func(contact string)) error
	// PendingRequests calls fn with every unanswered subscription request
	// to owner and the presence stanza it came as (nil if none was kept).
	PendingRequests(owner string, fn func(contact string, request []byte)) error
	// Subscribe applies a subscription stanza of type typ ("subscribe",
	// "subscribed", "unsubscribe", "unsubscribed") between owner and
	// contact, sent by owner (outbound) or by contact, and says what else
	// to do. request is the inbound subscribe to keep for owner's next
	// login. An error that is a *StanzaError is for the sender (a full
	// roster: resource-constraint).
	Subscribe(owner, contact, typ string, outbound bool, request []byte) (SubOutcome, error)
	// Befriend makes local accounts a and b each other's contacts at
	// once, both subscriptions granted, each filed under group in the
	// other's list ("" for none): the admin pages' circles.
	Befriend(a, b, group string) error
	// Groups is the roster groups owner filed contact (a bare JID) under,
	// none if contact is not in owner's roster: PEP's roster access model
	// (XEP-0060 pubsub#roster_groups_allowed). Unlike the methods above it
	// reads the contact's record; it is asked about one contact at a time,
	// and only for nodes with that model.
	Groups(owner, contact string) ([]string, error)
	// Adopt lists newContact in owner's roster under oldContact's name
	// and groups (keeping any newContact already has): a contact who
	// moved to a new address (XEP-0283, mod/moved). Subscription states
	// are Subscribe's.
	Adopt(owner, oldContact, newContact string) error
	// File lists contact in owner's roster under name and groups (those
	// it has already win): contacts brought from an old address
	// (xmppd/moving). Subscription states are Subscribe's.
	File(owner, contact, name string, groups []string) error
}

// Relation is one side's subscription state (RFC 6121 §2.1.2.5, §3).
type Relation struct {
	To, From bool // owner receives contact's presence; contact receives owner's
	Ask      bool // owner asked to subscribe, unanswered
	// PendingIn: contact asked to subscribe, unanswered.
	PendingIn bool
}

// SubOutcome says what a subscription stanza causes besides the state
// change.
type SubOutcome struct {
	// Forward: route the stanza to the contact (outbound) or deliver it to
	// the owner's resources (inbound).
	Forward bool
	// AutoReply: answer an inbound subscribe with "subscribed" on the
	// owner's behalf (already subscribed, or pre-approved).
	AutoReply bool
	// SendPresence: send the owner's current presence from each available
	// resource to the contact (its subscription was just granted).
	SendPresence bool
	// SendUnavailable: send unavailable presence from each of the owner's
	// available resources to the contact (its subscription ended).
	SendUnavailable bool
}

type contactsKey struct{}

func (s *Server) contacts() *installed[Contacts] { return installedAt[Contacts](s, contactsKey{}) }

// SetContacts installs the rule book (the roster module does, once),
// wrapped so that SubscriptionGranted fires for every grant.
func (s *Server) SetContacts(c Contacts) {
	var g Contacts = grants{c, s}
	s.contacts().set(g)
}

// grants fires SubscriptionGranted after the rule book granted one.
type grants struct {
	Contacts
	s *Server
}

func (g grants) Subscribe(owner, contact, typ string, outbound bool, request []byte) (SubOutcome, error) {
	o, err := g.Contacts.Subscribe(owner, contact, typ, outbound, request)
	if err == nil && o.SendPresence { // SendPresence: contact's subscription was just granted
		SubscriptionGranted.Fire(g.s, Grant{Owner: owner, Contact: contact})
	}
	return o, err
}

func (g grants) Befriend(a, b, group string) error {
	// Only a grant that is new fires: a circle's members are befriended
	// again each time one joins, and their contacts' resources must not
	// get the same last items again.
	ja, jb := a+"@"+g.s.Domain, b+"@"+g.s.Domain
	ra, _ := g.Contacts.Relation(a, jb)
	rb, _ := g.Contacts.Relation(b, ja)
	if err := g.Contacts.Befriend(a, b, group); err != nil {
		return err
	}
	if !ra.From {
		SubscriptionGranted.Fire(g.s, Grant{Owner: a, Contact: jb})
	}
	if !rb.From {
		SubscriptionGranted.Fire(g.s, Grant{Owner: b, Contact: ja})
	}
	return nil
}

// Contacts returns the rule book. Without a roster module nobody shares
// presence with anybody: every account is a stranger to every other.
func (s *Server) Contacts() Contacts {
	if c := s.contacts().get(); c != nil {
		return c
	}
	return noContacts{s}
}

type noContacts struct{ s *Server }

func (noContacts) Relation(string, string) (Relation, error) { return Relation{}, nil }
func (n noContacts) MayViewPresence(owner string, viewer jid.JID) bool {
	return owner != "" && viewer.Localpart() == owner && n.s.IsLocal(viewer)
}
func (noContacts) Subscribers(string, func(string)) error             { return nil }
func (noContacts) Subscriptions(string, func(string)) error           { return nil }
func (noContacts) PendingRequests(string, func(string, []byte)) error { return nil }
func (noContacts) Subscribe(string, string, string, bool, []byte) (SubOutcome, error) {
	return SubOutcome{}, ErrServiceUnavailable
}
func (noContacts) Befriend(string, string, string) error       { return ErrServiceUnavailable }
func (noContacts) Groups(string, string) ([]string, error)     { return nil, nil }
func (noContacts) Adopt(string, string, string) error          { return ErrServiceUnavailable }
func (noContacts) File(string, string, string, []string) error { return ErrServiceUnavailable }
