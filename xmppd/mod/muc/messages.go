package muc

import (
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// message is a message to room@host or room@host/nick.
func (m *Service) message(st *server.Stanza) {
	r := m.lookup(st.To.Localpart())
	if r == nil {
		m.bounce(st, server.ErrItemNotFound)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		m.bounce(st, server.ErrItemNotFound)
		return
	}
	if st.To.Resourcepart() != "" {
		m.private(st, r)
		return
	}
	if st.Type() == "groupchat" {
		m.groupchat(st, r)
		return
	}
	if x := st.El.Child(NSUser, "x"); x != nil && x.Child(NSUser, "invite") != nil {
		m.invite(st, r, x)
		return
	}
	if x := st.El.Child(NSUser, "x"); x != nil && x.Child(NSUser, "decline") != nil {
		m.decline(st, r, x)
		return
	}
	if x := st.El.Child(nsData, "x"); x != nil && (st.Type() == "" || st.Type() == "normal") {
		if vals, ok := formValues(x, nsRequest); ok && len(vals["FORM_TYPE"]) > 0 {
			m.voiceForm(st, r, vals)
			return
		}
	}
	m.bounce(st, withText(server.ErrBadRequest, "send room messages with type groupchat"))
}

// cleanMessage is a client's message ready to be sent from the room:
// addresses the room sets, no client-supplied occupant-id (XEP-0421 §4:
// a client could otherwise pose as someone else) and no stanza-id claiming
// to be the room's (XEP-0359 §3.1).
func (m *Service) cleanMessage(el *stream.Element, roomJID string) *stream.Element {
	x := el.Copy()
	x.Set("to", "")
	x.RemoveChildren(nsOccID, "")
	var keep []stream.Node
	for _, n := range x.Nodes {
		if n.El != nil && n.El.Space == nsSID && n.El.Local == "stanza-id" {
			if b, err := jid.Parse(n.El.Get("by")); err != nil || b.String() == roomJID || b.Domainpart() == m.host {
				continue
			}
		}
		keep = append(keep, n)
	}
	x.Nodes = keep
	return x
}

func (m *Service) groupchat(st *server.Stanza, r *room) {
	o := r.occupantOf(st.From)
	if o == nil {
		m.bounce(st, withText(server.ErrNotAcceptable, "only occupants may send to the room"))
		return
	}
	if o.role == "visitor" {
		m.bounce(st, withText(errForbidden, "visitors may not speak in this moderated room"))
		return
	}
	subj := st.El.Child(stream.NSClient, "subject")
	body := st.El.Child(stream.NSClient, "body")
	seq, good, retract := retractionTarget(st.El)
	if retract {
		if !good {
			m.bounce(st, withText(server.ErrItemNotFound, "no such message"))
			return
		}
		if !m.selfRetract(st, r, o, seq) {
			return
		}
	}
	if subj != nil && body == nil {
		if o.role != "moderator" && !r.st.Config.ChangeSubject {
			m.bounce(st, withText(errForbidden, "only moderators may change the subject"))
			return
		}
		old, oldBy := r.st.Subject, r.st.SubjBy
		r.st.Subject, r.st.SubjBy = limit(subj.Text(), 4000), o.nick
		if err := m.save(r); err != nil {
			r.st.Subject, r.st.SubjBy = old, oldBy
			m.srv.Log.Error("muc: save subject", "room", r.name, "err", err)
			m.bounce(st, server.ErrInternal)
			return
		}
	}
	roomJID := m.roomJID(r.name)
	out := m.cleanMessage(st.El, roomJID)
	out.Set("from", roomJID+"/"+o.nick)
	out.Add(stream.New(nsOccID, "occupant-id", "id", o.id))
	// Committed before anyone sees it (what was fanned out is in the
	// archive after a crash), sharing its commit with the messages
	// around it (fanout.go); messages without body, subject or
	// retraction are not archived but keep their place in the order.
	// Absent members named in it are woken after that commit
	// (mentions.go).
	m.postMessage(r, st, out, body != nil || subj != nil || retract, m.mentions(r, o, out)...)
}

// sendSubject sends the subject message that ends a join (§7.2.15),
// empty when there is none.
func (m *Service) sendSubject(r *room, to string) {
	from := m.roomJID(r.name)
	if r.st.SubjBy != "" {
		from += "/" + r.st.SubjBy
	}
	el := stream.New(stream.NSClient, "message", "type", "groupchat", "from", from, "to", to)
	el.Add(stream.New(stream.NSClient, "subject").AddText(r.st.Subject))
	m.send(el)
}

// private is a message to room@host/nick (§7.5).
func (m *Service) private(st *server.Stanza, r *room) {
	o := r.occupantOf(st.From)
	if o == nil {
		m.bounce(st, withText(server.ErrNotAcceptable, "only occupants may send private messages"))
		return
	}
	if st.Type() == "groupchat" {
		m.bounce(st, withText(server.ErrBadRequest, "a private message is not groupchat"))
		return
	}
	to := r.occ[foldNick(st.To.Resourcepart())]
	if to == nil {
		m.bounce(st, withText(server.ErrItemNotFound, "no such occupant"))
		return
	}
	if !r.mayPM(o) {
		m.bounce(st, errNoPM)
		return
	}
	out := m.cleanMessage(st.El, m.roomJID(r.name))
	out.Set("from", m.roomJID(r.name)+"/"+o.nick)
	out.RemoveChildren(NSUser, "")
	out.Add(stream.New(NSUser, "x"))
	out.Add(stream.New(nsOccID, "occupant-id", "id", o.id))
	m.toOccupant(to, out)
}

// invite is a mediated invitation (§7.8.2): the room sends it on, and in
// a members-only room makes the invitee a member if the inviter may.
func (m *Service) invite(st *server.Stanza, r *room, x *stream.Element) {
	o := r.occupantOf(st.From)
	if o == nil {
		m.bounce(st, withText(server.ErrNotAcceptable, "only occupants may invite"))
		return
	}
	aff := r.aff(o.bare)
	if !r.st.Config.AllowInvites && affRank(aff) < affRank("admin") {
		m.bounce(st, withText(errForbidden, "only admins may invite to this room"))
		return
	}
	var targets []string
	for _, inv := range x.Children() {
		if inv.Space != NSUser || inv.Local != "invite" {
			continue
		}
		j, err := jid.Parse(inv.Get("to"))
		if err != nil || j.Domainpart() == "" {
			m.bounce(st, server.ErrJIDMalformed)
			return
		}
		targets = append(targets, j.Bare().String())
	}
	if len(targets) == 0 || len(targets) > 20 {
		m.bounce(st, server.ErrBadRequest)
		return
	}
	if r.st.Config.MembersOnly {
		changed := false
		for _, t := range targets {
			if r.aff(t) == "outcast" {
				m.bounce(st, withText(errForbidden, "the invitee is banned"))
				return
			}
			if r.aff(t) == "none" {
				if len(r.st.Affs) >= m.o.MaxAffiliations {
					m.bounce(st, errResourceConstraint)
					return
				}
				r.st.Affs[t] = "member"
				changed = true
			}
		}
		if changed {
			if err := m.save(r); err != nil {
				for _, t := range targets {
					if r.st.Affs[t] == "member" {
						delete(r.st.Affs, t)
					}
				}
				m.bounce(st, server.ErrInternal)
				return
			}
		}
	}
	for _, inv := range x.Children() {
		if inv.Space != NSUser || inv.Local != "invite" {
			continue
		}
		j, _ := jid.Parse(inv.Get("to"))
		msg := stream.New(stream.NSClient, "message", "from", m.roomJID(r.name), "to", j.String())
		ux := stream.New(NSUser, "x")
		i := stream.New(NSUser, "invite", "from", o.bare)
		if reason := inv.ChildText(NSUser, "reason"); reason != "" {
			i.Add(stream.New(NSUser, "reason").AddText(limit(reason, 1000)))
		}
		ux.Add(i)
		if r.st.Config.Password != "" {
			ux.Add(stream.New(NSUser, "password").AddText(r.st.Config.Password))
		}
		msg.Add(ux)
		msg.Add(stream.New(stream.NSClient, "body").AddText(o.bare + " invites you to " + m.roomJID(r.name)))
		m.send(msg)
	}
}

// decline passes an invitee's refusal on to the inviter (§7.8.2).
func (m *Service) decline(st *server.Stanza, r *room, x *stream.Element) {
	d := x.Child(NSUser, "decline")
	j, err := jid.Parse(d.Get("to"))
	if err != nil || j.Domainpart() == "" {
		m.bounce(st, server.ErrJIDMalformed)
		return
	}
	msg := stream.New(stream.NSClient, "message", "from", m.roomJID(r.name), "to", j.String())
	ux := stream.New(NSUser, "x")
	dd := stream.New(NSUser, "decline", "from", bareOf(st.From))
	if reason := d.ChildText(NSUser, "reason"); reason != "" {
		dd.Add(stream.New(NSUser, "reason").AddText(limit(reason, 1000)))
	}
	msg.Add(ux.Add(dd))
	m.send(msg)
}
