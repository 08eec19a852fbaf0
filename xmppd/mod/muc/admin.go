package muc

import (
	"sort"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// roomOf finds the room an iq to room@host is for, locked.
func (m *Service) roomOf(st *server.Stanza) (*room, error) {
	if st.To.Localpart() == "" || st.To.Resourcepart() != "" {
		return nil, server.ErrBadRequest
	}
	r := m.lookup(st.To.Localpart())
	if r == nil {
		return nil, server.ErrItemNotFound
	}
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		return nil, server.ErrItemNotFound
	}
	m.flush(r) // the room's messages before the change (fanout.go)
	return r, nil
}

// actor is who sends an admin request: its affiliation, and its occupant
// (nil if it is not in the room).
func (r *room) actor(from jid.JID) (string, *occupant) {
	return r.aff(bareOf(from)), r.occupantOf(from)
}

// adminGet lists an affiliation (admins and owners may) or a role
// (moderators may; a non-occupant is forbidden, issue 12).
func (m *Service) adminGet(st *server.Stanza) (*stream.Element, error) {
	r, err := m.roomOf(st)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	items := st.El.FirstChild().Children()
	if len(items) != 1 || items[0].Space != NSAdmin || items[0].Local != "item" {
		return nil, withText(server.ErrBadRequest, "one item with an affiliation or a role")
	}
	aff, occ := r.actor(st.From)
	q := stream.New(NSAdmin, "query")
	it := items[0]
	switch {
	case it.Get("affiliation") != "" && it.Get("role") == "":
		want := it.Get("affiliation")
		if _, ok := affRankOf(want); !ok || want == "none" {
			return nil, withText(server.ErrBadRequest, "no such affiliation list")
		}
		// Members may see the member list of a members-only room
		// (clients show it as the member list); the rest is for admins.
		if affRank(aff) < affRank("admin") && !(want == "member" && r.st.Config.MembersOnly && affRank(aff) >= affRank("member")) {
			return nil, withText(errForbidden, "only admins may list affiliations")
		}
		bares := make([]string, 0)
		for b, a := range r.st.Affs {
			if a == want {
				bares = append(bares, b)
			}
		}
		if want == "member" {
			// The club's room: every account (club.go).
			more, err := m.localMembers(r)
			if err != nil {
				return nil, err
			}
			bares = append(bares, more...)
		}
		sort.Strings(bares)
		for _, b := range bares {
			el := stream.New(NSAdmin, "item", "affiliation", want, "jid", b)
			if n := r.listNick(b); n != "" {
				el.Set("nick", n)
			}
			q.Add(el)
		}
	case it.Get("role") != "" && it.Get("affiliation") == "":
		want := it.Get("role")
		if !validRole(want) || want == "none" {
			return nil, withText(server.ErrBadRequest, "no such role list")
		}
		if occ == nil || occ.role != "moderator" {
			return nil, withText(errForbidden, "only moderators in the room may list occupants")
		}
		for _, o := range r.sortedOccupants() {
			if o.role == want {
				q.Add(stream.New(NSAdmin, "item", "role", o.role, "affiliation", r.aff(o.bare), "nick", o.nick, "jid", firstReal(o)))
			}
		}
	default:
		return nil, withText(server.ErrBadRequest, "an affiliation or a role")
	}
	return q, nil
}

// change is one parsed admin item.
type change struct {
	bare   string    // affiliation change target
	target *occupant // role change target
	aff    string
	role   string
	reason string
}

// adminSet applies muc#admin items: all are checked first, so a bad one
// changes nothing (§9, §10: the permission table of §5.2).
func (m *Service) adminSet(st *server.Stanza) (*stream.Element, error) {
	r, err := m.roomOf(st)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	aff, occ := r.actor(st.From)
	items := st.El.FirstChild().Children()
	if len(items) == 0 || len(items) > 100 {
		return nil, withText(server.ErrBadRequest, "1 to 100 items")
	}
	var changes []change
	owners := r.owners()
	for _, it := range items {
		if it.Space != NSAdmin || it.Local != "item" {
			return nil, withText(server.ErrBadRequest, "only items")
		}
		c := change{aff: it.Get("affiliation"), role: it.Get("role"), reason: limit(it.ChildText(NSAdmin, "reason"), 1000)}
		switch {
		case c.aff != "" && c.role == "":
			if _, ok := affRankOf(c.aff); !ok {
				return nil, withText(server.ErrBadRequest, "no such affiliation: "+c.aff)
			}
			j, err := jid.Parse(it.Get("jid"))
			if err != nil || it.Get("jid") == "" {
				if n := it.Get("nick"); n != "" && it.Get("jid") == "" {
					o := r.occ[foldNick(n)]
					if o == nil {
						return nil, withText(server.ErrItemNotFound, "no such occupant")
					}
					c.bare = o.bare
					break
				}
				return nil, withText(server.ErrBadRequest, "an affiliation change needs a jid")
			}
			c.bare = bareOf(j)
		case c.role != "" && c.aff == "":
			if !validRole(c.role) {
				return nil, withText(server.ErrBadRequest, "no such role: "+c.role)
			}
			n := it.Get("nick")
			if n == "" {
				return nil, withText(server.ErrBadRequest, "a role change needs a nick")
			}
			c.target = r.occ[foldNick(n)]
			if c.target == nil {
				return nil, withText(server.ErrItemNotFound, "no such occupant")
			}
		default:
			return nil, withText(server.ErrBadRequest, "exactly one of affiliation and role")
		}
		if err := r.allowed(aff, occ, c, &owners); err != nil {
			return nil, err
		}
		changes = append(changes, c)
	}
	// Apply to a copy, commit, then tell the room.
	oldAffs := r.st.Affs
	next := make(map[string]string, len(oldAffs))
	for k, v := range oldAffs {
		next[k] = v
	}
	affChanged := false
	for _, c := range changes {
		if c.target != nil {
			continue
		}
		affChanged = true
		if c.aff == "none" {
			delete(next, c.bare)
		} else {
			next[c.bare] = c.aff
		}
	}
	if len(next) > m.o.MaxAffiliations {
		return nil, withText(errResourceConstraint, "too many affiliations")
	}
	if affChanged {
		r.st.Affs = next
		if err := m.save(r); err != nil {
			r.st.Affs = oldAffs
			return nil, err
		}
	}
	actorNick := ""
	if occ != nil {
		actorNick = occ.nick
	}
	for _, c := range changes {
		if c.target != nil {
			if _, still := r.occ[foldNick(c.target.nick)]; !still {
				continue
			}
			if c.role == "none" {
				m.kickOut(r, c.target, 307, actorNick, c.reason)
				continue
			}
			c.target.role = c.role
			m.broadcastPresence(r, c.target, "", nil, nil)
			continue
		}
		for _, o := range r.occupantsOfBare(c.bare) {
			switch {
			case c.aff == "outcast":
				m.kickOut(r, o, 301, actorNick, c.reason)
			case r.st.Config.MembersOnly && affRank(c.aff) < affRank("member"):
				m.kickOut(r, o, 321, actorNick, c.reason)
			default:
				o.role = r.defaultRole(c.aff)
				if o.role == "visitor" && c.aff == "none" && !r.st.Config.Moderated {
					o.role = "participant"
				}
				m.broadcastPresence(r, o, "", nil, nil)
			}
		}
	}
	m.emptied(r)
	return nil, nil
}

// allowed is XEP-0045 §5.2's table for one change by an actor with
// affiliation aff and occupant occ. owners counts the owners left after
// the changes so far (the last owner cannot go, §10.6: conflict).
func (r *room) allowed(aff string, occ *occupant, c change, owners *int) error {
	if c.target != nil {
		// Role changes need a moderator in the room.
		if occ == nil || occ.role != "moderator" {
			return withText(errForbidden, "only moderators may change roles")
		}
		taff := r.aff(c.target.bare)
		switch {
		case c.role == "moderator" || c.target.role == "moderator" && c.role != "moderator":
			// Granting or revoking moderator is for admins and owners,
			// and never against an admin or owner.
			if affRank(aff) < affRank("admin") {
				return withText(errForbidden, "only admins may grant or revoke moderator")
			}
			if affRank(taff) >= affRank("admin") {
				return withText(errNotAllowed, "admins and owners stay moderators")
			}
		case affRank(taff) >= affRank("admin"):
			return withText(errNotAllowed, "admins and owners cannot be kicked or silenced")
		case c.role == "none" && affRank(taff) > affRank(aff):
			return withText(errNotAllowed, "cannot kick someone with a higher affiliation")
		}
		return nil
	}
	if affRank(aff) < affRank("admin") {
		return withText(errForbidden, "only admins and owners may change affiliations")
	}
	taff := r.aff(c.bare)
	if aff == "admin" {
		// Admins manage members, bans and none — not admins or owners,
		// and cannot make anyone one.
		if affRank(taff) >= affRank("admin") {
			return withText(errNotAllowed, "an admin cannot change an admin or owner")
		}
		if affRank(c.aff) >= affRank("admin") {
			return withText(errForbidden, "only owners may grant admin or owner")
		}
		return nil
	}
	if taff == "owner" && c.aff != "owner" {
		if *owners <= 1 {
			return withText(errConflict, "the last owner cannot be demoted")
		}
		*owners--
	}
	if taff != "owner" && c.aff == "owner" {
		*owners++
	}
	return nil
}

// ownerGet is the configuration form (owners only).
func (m *Service) ownerGet(st *server.Stanza) (*stream.Element, error) {
	r, err := m.roomOf(st)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	if r.aff(bareOf(st.From)) != "owner" {
		return nil, withText(errForbidden, "only owners may configure the room")
	}
	return stream.New(NSOwner, "query").Add(r.configForm()), nil
}

// ownerSet submits the configuration or destroys the room.
func (m *Service) ownerSet(st *server.Stanza) (*stream.Element, error) {
	r, err := m.roomOf(st)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	if r.aff(bareOf(st.From)) != "owner" {
		return nil, withText(errForbidden, "only owners may configure the room")
	}
	q := st.El.FirstChild()
	if d := q.Child(NSOwner, "destroy"); d != nil {
		return nil, m.destroy(r, d)
	}
	x := q.Child(nsData, "x")
	if x == nil {
		return nil, withText(server.ErrBadRequest, "a form or destroy")
	}
	switch x.Get("type") {
	case "cancel":
		return nil, m.cancelCreation(r)
	case "submit":
	default:
		return nil, withText(server.ErrBadRequest, "submit or cancel the form")
	}
	vals, ok := formValues(x, nsConfForm)
	if !ok {
		return nil, withText(server.ErrBadRequest, "not a muc#roomconfig form")
	}
	cfg, err := applyConfig(r.st.Config, vals)
	if err != nil {
		return nil, err
	}
	old, oldLock := r.st.Config, r.st.LockedUntil
	r.st.Config = cfg
	r.st.LockedUntil = 0 // configured: open to others (lock.go)
	if err := m.save(r); err != nil {
		r.st.Config, r.st.LockedUntil = old, oldLock
		return nil, err
	}
	if cfg == old {
		// The instant-room request, or a form that changed nothing:
		// no 104 (clients show it as "configuration changed").
		return nil, nil
	}
	// Status codes of §10.2.1 to the occupants: 104 (configuration
	// changed), 172/173 when whois changed.
	codes := []int{104}
	if old.WhoIs != cfg.WhoIs {
		if cfg.WhoIs == "anyone" {
			codes = append(codes, 172)
		} else {
			codes = append(codes, 173)
		}
	}
	for _, to := range r.sortedOccupants() {
		msg := stream.New(stream.NSClient, "message", "type", "groupchat", "from", m.roomJID(r.name))
		x := stream.New(NSUser, "x")
		for _, c := range codes {
			x.Add(stream.New(NSUser, "status", "code", itoa(c)))
		}
		msg.Add(x)
		m.toOccupant(to, msg)
	}
	if cfg.MembersOnly && !old.MembersOnly {
		for _, o := range r.sortedOccupants() {
			if affRank(r.aff(o.bare)) < affRank("member") {
				m.kickOut(r, o, 322, "", "")
			}
		}
	}
	m.emptied(r)
	return nil, nil
}

// destroy ends the room (§10.9): everyone leaves with <destroy/>, the
// room and its archive go.
func (m *Service) destroy(r *room, d *stream.Element) error {
	if err := m.remove(r); err != nil {
		return err
	}
	for _, o := range r.sortedOccupants() {
		p := stream.New(stream.NSClient, "presence", "type", "unavailable", "from", m.roomJID(r.name)+"/"+o.nick)
		x := stream.New(NSUser, "x")
		x.Add(stream.New(NSUser, "item", "affiliation", "none", "role", "none"))
		dd := stream.New(NSUser, "destroy")
		if alt := d.Get("jid"); alt != "" {
			if j, err := jid.Parse(alt); err == nil {
				dd.Set("jid", j.String())
			}
		}
		if reason := d.ChildText(NSOwner, "reason"); reason != "" {
			dd.Add(stream.New(NSUser, "reason").AddText(limit(reason, 1000)))
		}
		x.Add(dd)
		p.Add(x)
		m.toOccupant(o, p)
	}
	clear(r.occ)
	r.slab = slab{}
	return nil
}

// ping to the service or a room: it is there. Self-ping to one's own
// occupant JID (XEP-0410) is answered with the other iqs to occupants
// (iq.go: a result while joined, not-acceptable once not).
func (m *Service) ping(st *server.Stanza) (*stream.Element, error) {
	if st.To.Localpart() == "" {
		return nil, nil
	}
	r := m.lookup(st.To.Localpart())
	if r == nil {
		return nil, server.ErrItemNotFound
	}
	return nil, nil
}

// accountDeleted drops a deleted member's affiliations; rooms they own
// alone keep going with no owner until the admin pages give one.
func (m *Service) accountDeleted(user string) {
	bare := user + "@" + m.srv.Domain
	m.mu.Lock()
	rooms := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		_, hasNick := r.st.Nicks[bare]
		aff, hasAff := r.st.Affs[bare]
		if hasAff || hasNick {
			m.flush(r) // the room's messages before the change (fanout.go)
			delete(r.st.Affs, bare)
			delete(r.st.Nicks, bare)
			if err := m.save(r); err != nil {
				m.srv.Log.Error("muc: drop deleted member", "room", r.name, "err", err)
			}
			// Occupants hear of a member list change (XEP-0045 §9.3),
			// or clients that encrypt to the room's members (OMEMO)
			// keep the deleted account's devices. An AllLocal room's
			// implicit members are told by watchClubAccounts.
			if hasAff && aff != "outcast" && !r.st.AllLocal {
				m.tellAffiliation(r, bare, "none")
			}
		}
		r.mu.Unlock()
	}
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

func sortItems(items []server.DiscoItem) {
	sort.Slice(items, func(i, j int) bool { return items[i].JID < items[j].JID })
}
