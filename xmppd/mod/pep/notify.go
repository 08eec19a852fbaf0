package pep

import (
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// allowed reports whether viewer (a bare JID) may read owner's node with
// configuration c. The roster access model is checked as "a contact who
// sees the owner's presence": the server's Contacts rule book has no
// roster groups, so roster_groups_allowed is stored and shown but not
// narrowed further (reported in the package's limits).
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
	case AccessPresence, AccessRoster:
		return m.srv.Contacts().MayViewPresence(owner, v)
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
		// Remote contacts get nothing yet: the server keeps no record of
		// their resources' caps (no s2s presence tracking for PEP).
		if err != nil || !m.srv.IsLocal(j) || j.Localpart() == "" || j.Localpart() == owner {
			continue
		}
		if m.allowed(owner, j.Bare().String(), c) {
			add(j.Localpart())
		}
	}
	return out
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
	viewer := s.JID.Bare().String()
	for _, o := range owners {
		nodes, err := m.db.nodes(o)
		if err != nil {
			m.srv.Log.Error("pep: last items", "owner", o, "err", err)
			continue
		}
		for node, mt := range nodes {
			if mt.C.SendLast != "on_sub_and_presence" || len(mt.Items) == 0 || !m.wants(s, node) || !m.allowed(o, viewer, mt.C) {
				continue
			}
			_, items, err := m.db.node(o, node, nil, 1)
			if err != nil || len(items) == 0 {
				continue
			}
			s.Send(m.event(o, s, stream.New(NSEvent, "items", "node", node).Add(eventItem(items[0]))))
		}
	}
}
