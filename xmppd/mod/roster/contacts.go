package roster

import (
	"slices"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
)

// contactsImpl is the roster's server.Contacts: the presence rules other
// modules reach through srv.Contacts(). Everything but PendingRequests and
// Subscribe reads only the index (store.go).
type contactsImpl struct{ srv *server.Server }

var _ server.Contacts = contactsImpl{}

func (c contactsImpl) Befriend(a, b, group string) error { return befriend(c.srv, a, b, group) }

func (c contactsImpl) Relation(owner, contact string) (server.Relation, error) {
	var e entry
	err := c.srv.Store.View(func(tx *bolt.Tx) error {
		e, _ = entryTx(tx, owner, contact)
		return nil
	})
	return e.relation(), err
}

// MayViewPresence: RFC 6121 §8.5.1 lets the server answer for an account
// only within its presence audience.
func (c contactsImpl) MayViewPresence(owner string, viewer jid.JID) bool {
	if viewer.Domainpart() == "" || owner == "" {
		return false
	}
	if c.srv.IsLocal(viewer) && viewer.Localpart() == owner {
		return true
	}
	r, err := c.Relation(owner, viewer.Bare().String())
	return err == nil && r.From
}

// Groups reads contact's record: the index has no groups (store.go).
func (c contactsImpl) Groups(owner, contact string) ([]string, error) {
	it, ok, err := Get(c.srv.Store, owner, contact)
	if err != nil || !ok || !it.Listed {
		return nil, err
	}
	return it.Groups, nil
}

func (c contactsImpl) Subscribers(owner string, fn func(string)) error {
	return contacts(c.srv.Store, owner, fFrom, fn)
}

func (c contactsImpl) Subscriptions(owner string, fn func(string)) error {
	return contacts(c.srv.Store, owner, fTo, fn)
}

func (c contactsImpl) PendingRequests(owner string, fn func(string, []byte)) error {
	items, err := PendingIn(c.srv.Store, owner)
	for _, it := range items {
		fn(it.JID, it.Request)
	}
	return err
}

func (c contactsImpl) Subscribe(owner, contact, typ string, outbound bool, request []byte) (server.SubOutcome, error) {
	ev, ok := EventFor(typ, outbound)
	if !ok {
		return server.SubOutcome{}, server.ErrBadRequest
	}
	if len(request) > maxRequest {
		request = nil
	}
	var o Outcome
	_, err := Update(c.srv, owner, contact, func(it *Item) error {
		o = Apply(it, ev)
		if ev == InSubscribe && o.Forward {
			it.Request = request
		}
		return nil
	})
	return o, err
}

// Adopt files newContact under oldContact's name and groups (mod/moved).
func (c contactsImpl) Adopt(owner, oldContact, newContact string) error {
	old, _, err := Get(c.srv.Store, owner, oldContact)
	if err != nil {
		return err
	}
	return c.File(owner, newContact, old.Name, old.Groups)
}

// File lists contact under name and groups, unless it has its own. The
// roster set's bounds hold (a name or group over maxText is left out,
// groups beyond maxGroups and repeated ones dropped): these come from
// another server.
func (c contactsImpl) File(owner, contact, name string, groups []string) error {
	if len(name) > maxText {
		name = ""
	}
	var gs []string
	for _, g := range groups {
		if g != "" && len(g) <= maxText && !slices.Contains(gs, g) && len(gs) < maxGroups {
			gs = append(gs, g)
		}
	}
	_, err := Update(c.srv, owner, contact, func(it *Item) error {
		if it.Name == "" {
			it.Name = name
		}
		if len(it.Groups) == 0 {
			it.Groups = slices.Clone(gs)
		}
		it.Listed = true
		return nil
	})
	return err
}
