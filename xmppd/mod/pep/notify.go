package pep

import (
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// allowed reports whether viewer (a bare JID) may read owner's node with
// configuration c. The roster access model (XEP-0060 §4.5) lets in the
// contacts owner filed under one of pubsub#roster_groups_allowed, read
// from the roster through the server's Contacts; with no group allowed,
// nobody but the owner.
func (m *mod) allowed(owner, viewer string, c config) bool {
	v, err := jid.Parse(viewer)
	if err != nil {
		return false
	}
	if m.srv.IsLocal(v) && v.Localpart() == owner {
		return true
	}
	switch c.Access {
	case AccessOpen:
		return true
	case AccessPresence:
		return m.srv.Contacts().MayViewPresence(owner, v)
	case AccessRoster:
		if len(c.Groups) == 0 {
			return false
		}
		groups, err := m.srv.Contacts().Groups(owner, v.Bare().String())
		if err != nil {
			m.srv.Log.Error("pep: roster groups", "owner", owner, "err", err)
			return false
		}
		for _, g := range groups {
			if slices.Contains(c.Groups, g) {
				return true
			}
		}
	}
	return false
}

// audience is the sessions that hear about owner's node: the owner's own
// available resources and those of local contacts subscribed to the
// owner's presence whom the access model lets in (XEP-0163 §4.3: the
// implicit subscription of a presence subscriber), each only if its
// entity capabilities ask for node+"+notify" (§4.3.1).
func (m *mod) audience(owner, node string, c config) []*session.Session {
	var out []*session.Session
	add := func(user string) {
		all, _ := m.srv.Router.Available(user)
		for _, s := range all {
			if m.wants(s, node) {
				out = append(out, s)
			}
		}
	}
	add(owner)
	if c.Access == AccessWhitelist {
		return out
	}
	var contacts []string
	m.srv.Contacts().Subscribers(owner, func(contact string) { contacts = append(contacts, contact) })
	for _, ct := range contacts {
		j, err := jid.Parse(ct)
		// Remote contacts' resources are remote.go's (notifyRemote).
		if err != nil || !m.srv.IsLocal(j) || j.Localpart() == "" || j.Localpart() == owner {
			continue
		}
		if m.allowed(owner, j.Bare().String(), c) && !m.blocked(owner, j.Localpart()) {
			add(j.Localpart())
		}
	}
	return out
}

// blocked reports whether either of two local accounts blocked the other
// (XEP-0191). Notifications are written to sessions directly, where the
// blocking module's routing hooks never see them, so PEP asks itself: a
// blocked contact's avatar, nick and OMEMO device list must not arrive,
// and a member's must not reach whom they blocked (presence is cut both
// ways, and PEP rides on presence).
func (m *mod) blocked(a, b string) bool {
	ja, errA := jid.New(a, m.srv.Domain, "")
	jb, errB := jid.New(b, m.srv.Domain, "")
	if errA != nil || errB != nil {
		return true
	}
	return m.srv.Blocks(a, jb) || m.srv.Blocks(b, ja)
}

// event wraps payload (items, purge, delete) in a headline from owner to s.
func (m *mod) event(owner string, s *session.Session, payload *stream.Element) *stream.Element {
	msg := stream.New(stream.NSClient, "message", "type", "headline",
		"from", owner+"@"+m.srv.Domain, "to", s.JID.String())
	return msg.Add(stream.New(NSEvent, "event").Add(payload))
}

// notify sends payload to node's audience. Notifications are headlines
// (XEP-0060 §12.5): a session that cannot take one loses only it, and
// will get the last item again at its next presence.
func (m *mod) notify(owner, node string, c config, payload *stream.Element) {
	for _, s := range m.audience(owner, node, c) {
		s.Send(m.event(owner, s, payload.Copy()))
	}
	m.notifyRemote(owner, node, c, payload) // remote.go
}

// deliverLast sends s the last item of every node it asks +notify for,
// of its own account and of each contact whose presence it receives
// (XEP-0163 §4.3.2), when it comes online or changes its capabilities.
func (m *mod) deliverLast(s *session.Session) {
	owners := []string{s.User}
	m.srv.Contacts().Subscriptions(s.User, func(contact string) {
		if j, err := jid.Parse(contact); err == nil && m.srv.IsLocal(j) && j.Localpart() != "" && j.Localpart() != s.User {
			owners = append(owners, j.Localpart())
		}
	})
	for _, o := range owners {
		m.sendLast(s, o, false)
	}
}

// granted runs when g.Owner granted g.Contact a presence subscription:
// the contact's available resources get the last item of each of the
// owner's nodes they ask +notify for and may now read (XEP-0060 §4.3's
// on_sub, which XEP-0163 §4.3.2 implies for the implicit subscription a
// presence subscription makes), without waiting for their next presence.
func (m *mod) granted(g server.Grant) {
	j, err := jid.Parse(g.Contact)
	// Remote contacts: their resources get the last items when their
	// presence reaches the owner (remote.go).
	if err != nil || !m.srv.IsLocal(j) || j.Localpart() == "" || j.Localpart() == g.Owner {
		return
	}
	all, _ := m.srv.Router.Available(j.Localpart())
	for _, s := range all {
		m.sendLast(s, g.Owner, true)
	}
}

// sendLast sends s the last item of each of owner's nodes that s asks
// +notify for and may read, if the node's send_last_published_item says
// so: on presence (sub false) only for on_sub_and_presence, on a new
// subscription for on_sub as well.
func (m *mod) sendLast(s *session.Session, owner string, sub bool) {
	nodes, err := m.db.nodes(owner)
	if err != nil {
		m.srv.Log.Error("pep: last items", "owner", owner, "err", err)
		return
	}
	viewer := s.JID.Bare().String()
	if owner != s.User && m.blocked(owner, s.User) {
		return
	}
	for node, mt := range nodes {
		when := mt.C.SendLast == "on_sub_and_presence" || sub && mt.C.SendLast == "on_sub"
		if !when || len(mt.Items) == 0 || !m.wants(s, node) || !m.allowed(owner, viewer, mt.C) {
			continue
		}
		_, items, err := m.db.node(owner, node, nil, 1)
		if err != nil || len(items) == 0 {
			continue
		}
		s.Send(m.event(owner, s, stream.New(NSEvent, "items", "node", node).Add(eventItem(items[0]))))
	}
}
