package blocking

import (
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// matches reports whether one list item (a normalised JID) covers j, by
// the rules of blocks.
func matches(item string, j jid.JID) bool {
	it, err := jid.Parse(item)
	if err != nil {
		return false
	}
	if it.Localpart() != "" {
		if it.Resourcepart() != "" {
			return it.Equal(j)
		}
		return it.Equal(j.Bare())
	}
	d := j.Domainpart()
	if it.Resourcepart() != "" {
		return j.Localpart() == "" && strings.EqualFold(d, it.Domainpart()) && j.Resourcepart() == it.Resourcepart()
	}
	return strings.EqualFold(d, it.Domainpart()) || strings.HasSuffix(strings.ToLower(d), "."+strings.ToLower(it.Domainpart()))
}

// contactsMatching returns user's contacts (with a subscription from the
// user when from, to the user otherwise) that item covers. Collected
// before anything is sent: the roster reads them in a transaction.
func (m *mod) contactsMatching(user, item string, from bool) []jid.JID {
	var out []jid.JID
	fn := func(c string) {
		if j, err := jid.Parse(c); err == nil && matches(item, j) {
			out = append(out, j)
		}
	}
	var err error
	if from {
		err = m.srv.Contacts().Subscribers(user, fn)
	} else {
		err = m.srv.Contacts().Subscriptions(user, fn)
	}
	if err != nil {
		m.srv.Log.Error("blocking: contacts", "user", user, "err", err)
	}
	return out
}

// target is where presence for contact c goes: the blocked full JID
// itself when the item names one, else the contact.
func target(item string, c jid.JID) string {
	if it, err := jid.Parse(item); err == nil && it.Resourcepart() != "" && it.Localpart() != "" {
		return it.String()
	}
	return c.String()
}

// cutPresence makes the member and a just-blocked address disappear from
// each other (§3.3): unavailable presence from each of the member's
// available resources to every contact the item covers that receives it,
// and unavailable presence of those contacts the member sees to the
// member's available resources.
func (m *mod) cutPresence(user, item string) {
	mine, _ := m.srv.Router.Available(user)
	if len(mine) == 0 {
		return
	}
	for _, c := range m.contactsMatching(user, item, true) {
		for _, s := range mine {
			x := stream.New(stream.NSClient, "presence", "type", "unavailable", "from", s.JID.String(), "to", target(item, c))
			m.own.Store(x, struct{}{})
			m.srv.Route(x)
			m.own.Delete(x)
		}
	}
	for _, c := range m.contactsMatching(user, item, false) {
		froms := []string{c.String()}
		if u := m.localUser(c); u != "" {
			froms = froms[:0]
			for _, o := range m.srv.Router.Sessions(u) {
				if o.Available() && matches(item, o.JID) {
					froms = append(froms, o.JID.String())
				}
			}
		}
		for _, f := range froms {
			for _, s := range mine {
				s.Send(stream.New(stream.NSClient, "presence", "type", "unavailable", "from", f, "to", s.JID.String()))
			}
		}
	}
}

// restorePresence undoes cutPresence after an unblock (§3.4): the
// member's current presence to the contacts the item covered that may see
// it, and theirs to the member (local contacts answer at once, others are
// probed). Routed normally, so the contacts' own block lists apply.
func (m *mod) restorePresence(user, item string) {
	mine, _ := m.srv.Router.Available(user)
	if len(mine) == 0 {
		return
	}
	for _, c := range m.contactsMatching(user, item, true) {
		for _, s := range mine {
			pr, avail, _ := s.Presence()
			if !avail || pr == nil {
				continue
			}
			x := pr.Copy()
			x.Set("from", s.JID.String())
			x.Set("to", target(item, c))
			m.srv.Route(x)
		}
	}
	for _, c := range m.contactsMatching(user, item, false) {
		u := m.localUser(c)
		if u == "" {
			m.srv.Route(stream.New(stream.NSClient, "presence", "type", "probe", "from", mine[0].JID.Bare().String(), "to", c.String()))
			continue
		}
		if r, err := m.srv.Contacts().Relation(u, user+"@"+m.srv.Domain); err != nil || !r.From {
			continue
		}
		for _, o := range m.srv.Router.Sessions(u) {
			pr, avail, _ := o.Presence()
			if !avail || pr == nil || !matches(item, o.JID) {
				continue
			}
			for _, s := range mine {
				x := pr.Copy()
				x.Set("from", o.JID.String())
				x.Set("to", s.JID.String())
				m.srv.Route(x)
			}
		}
	}
}
