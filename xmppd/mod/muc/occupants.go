package muc

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/text/secure/precis"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// occupant is one nickname in a room. One member may be in the room from
// several clients under one nickname (multi-session, as Prosody allows):
// each client's full JID is in real.
type occupant struct {
	nick string
	bare string
	// real are its clients: almost always one, so a slice, not a map (a
	// one-entry map cost ~250 B per idle occupant; issue 12's target is
	// under 2 KiB an occupant).
	real []client
	role string
	id   string // occupant-id
	// voiceAsked: when it last asked for voice, unix nanoseconds
	// (voice.go; 8 bytes, not a 24-byte time.Time, on every occupant).
	voiceAsked int64
	// one is real's backing array while it has one client: no separate
	// allocation for the common case (see slab.newOccupant).
	one [1]client
}

// client is one client of an occupant: its full JID and the last
// presence it sent, cleaned (cleanPresence; nil when nothing of it is
// left to repeat).
type client struct {
	jid  string
	pres *stream.Element
}

// clientIdx is the index of full JID real in o.real, or -1.
func (o *occupant) clientIdx(real string) int {
	for i := range o.real {
		if o.real[i].jid == real {
			return i
		}
	}
	return -1
}

// setPresence records real's last presence, adding real as a client.
func (o *occupant) setPresence(real string, pres *stream.Element) {
	if i := o.clientIdx(real); i >= 0 {
		o.real[i].pres = pres
		return
	}
	o.real = append(o.real, client{jid: real, pres: pres})
}

// foldNick is the key under which a nickname conflicts with another:
// RFC 8266's Nickname profile (case folded, NFKC so full-width letters
// fold to their ASCII forms, spaces normalised). "" if the nick is not a
// valid nickname.
func foldNick(nick string) string {
	k, err := precis.Nickname.CompareKey(nick)
	if err != nil {
		return ""
	}
	return k
}

// occupantOf finds the occupant whose client real is (a full JID).
func (r *room) occupantOf(real jid.JID) *occupant {
	s := real.String()
	for _, o := range r.occ {
		if o.clientIdx(s) >= 0 {
			return o
		}
	}
	return nil
}

// occupantsOfBare are the occupants of member bare.
func (r *room) occupantsOfBare(bare string) []*occupant {
	var out []*occupant
	for _, o := range r.occ {
		if o.bare == bare {
			out = append(out, o)
		}
	}
	return out
}

func (r *room) sortedOccupants() []*occupant {
	out := make([]*occupant, 0, len(r.occ))
	for _, o := range r.occ {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].nick < out[j].nick })
	return out
}

// defaultRole is the role an affiliation joins with (XEP-0045 §5.1.2).
func (r *room) defaultRole(aff string) string {
	switch aff {
	case "owner", "admin":
		return "moderator"
	case "member":
		return "participant"
	}
	if r.st.Config.Moderated {
		return "visitor"
	}
	return "participant"
}

// canSeeJIDs: may o see occupants' real JIDs?
func (r *room) canSeeJIDs(o *occupant) bool {
	return r.st.Config.WhoIs == "anyone" || o.role == "moderator"
}

// presenceOf builds o's presence for to (an occupant, for whether the
// real JID is shown); extra status codes are added to the muc#user x.
// Everything in it is its own: callers add to its children (nick
// changes, kicks).
func (m *Service) presenceOf(r *room, o *occupant, to *occupant, typ string, codes ...int) *stream.Element {
	show := to != nil && (to == o || r.canSeeJIDs(to))
	return m.presenceTo(o, m.roomJID(r.name)+"/"+o.nick, typ, "", m.presenceNodes(r, o, typ, show, codes))
}

// presenceNodes are the children of o's presence: its client's (copied:
// the occupant keeps that presence), the muc#user x with the item (the
// real JID when show) and the status codes, and the occupant-id. The
// slice has no spare capacity, so that it can be shared by the copies
// of one presence for several recipients (broadcastPresence): adding a
// child to one of them reallocates instead of writing into the others'.
func (m *Service) presenceNodes(r *room, o *occupant, typ string, show bool, codes []int) []stream.Node {
	var base *stream.Element
	if typ == "" && len(o.real) > 0 {
		base = o.real[0].pres // any of the clients' presence: they share the nick
	}
	n := 2
	if base != nil {
		n += len(base.Nodes)
	}
	nodes := make([]stream.Node, 0, n)
	if base != nil {
		for _, c := range base.Nodes {
			if c.El != nil {
				c.El = c.El.Copy()
			}
			nodes = append(nodes, c)
		}
	}
	role := o.role
	if typ == "unavailable" {
		role = "none"
	}
	na := 2
	if show {
		na++
	}
	item := &stream.Element{Space: NSUser, Local: "item", Attr: make([]stream.Attr, 0, na)}
	item.Attr = append(item.Attr, stream.Attr{Local: "affiliation", Value: r.aff(o.bare)}, stream.Attr{Local: "role", Value: role})
	if show {
		item.Attr = append(item.Attr, stream.Attr{Local: "jid", Value: firstReal(o)})
	}
	x := &stream.Element{Space: NSUser, Local: "x", Nodes: make([]stream.Node, 0, 1+len(codes))}
	x.Nodes = append(x.Nodes, stream.Node{El: item})
	for _, c := range codes {
		x.Nodes = append(x.Nodes, stream.Node{El: stream.New(NSUser, "status", "code", strconv.Itoa(c))})
	}
	occID := &stream.Element{Space: nsOccID, Local: "occupant-id", Attr: []stream.Attr{{Local: "id", Value: o.id}}}
	return append(nodes, stream.Node{El: x}, stream.Node{El: occID})
}

// presenceTo is one copy of o's presence: its own element and attributes
// (from, type, to — to "" is set by the caller) around nodes, which it
// shares (see presenceNodes). The attributes are allocated once at their
// final size: a presence to each occupant made several growing copies
// each, the bulk of a join burst's garbage (issue 12: the heap that
// garbage grew is most of the RSS an idle occupant costs).
func (m *Service) presenceTo(o *occupant, from, typ, to string, nodes []stream.Node) *stream.Element {
	var base *stream.Element
	if typ == "" && len(o.real) > 0 {
		base = o.real[0].pres
	}
	p := &stream.Element{Space: stream.NSClient, Local: "presence", Nodes: nodes}
	n := 3 // type, from, to
	if base != nil {
		p.Prefix = base.Prefix
		n += len(base.Attr)
	}
	if typ == "" {
		n--
	}
	p.Attr = make([]stream.Attr, 0, n)
	if base != nil {
		p.Attr = append(p.Attr, base.Attr...)
	}
	p.Set("type", typ)
	p.Set("from", from)
	p.Set("to", to)
	return p
}

func firstReal(o *occupant) string {
	best := ""
	for _, c := range o.real {
		if best == "" || c.jid < best {
			best = c.jid
		}
	}
	return best
}

// cleanPresence is a client's presence without what the room sets itself
// (addresses, MUC payloads, client-supplied occupant-ids), as kept for as
// long as the client is in the room: nil when nothing is left but
// whitespace (presenceOf then builds a bare one), and otherwise without
// the spare capacity the removals leave (a plain join kept a 3-attribute
// backing array and an empty element, ~280 B per idle occupant).
func cleanPresence(el *stream.Element) *stream.Element {
	p := el.Copy()
	p.Set("to", "")
	p.Set("from", "")
	p.Set("id", "")
	p.RemoveChildren(NS, "")
	p.RemoveChildren(NSUser, "")
	p.RemoveChildren(nsOccID, "")
	empty := len(p.Attr) == 0
	for _, n := range p.Nodes {
		if n.El != nil || strings.TrimSpace(n.Text) != "" {
			empty = false
		}
	}
	if empty {
		return nil
	}
	p.Attr = slices.Clip(p.Attr)
	p.Nodes = slices.Clip(p.Nodes)
	if cap(p.Attr) == 0 {
		p.Attr = nil
	}
	return p
}

// toOccupantOwned is toOccupant for an element built for o alone and
// not touched again: its last client gets el itself instead of a copy.
// The presences of a join are built one per recipient, and copying each
// again doubled the garbage of a join burst (n presences to the
// newcomer, one to each of n occupants).
func (m *Service) toOccupantOwned(o *occupant, el *stream.Element) {
	for i, c := range o.real {
		x := el
		if i < len(o.real)-1 {
			x = el.Copy()
		}
		x.Set("to", c.jid)
		m.send(x)
	}
}

// toOccupant sends el to every client of o.
func (m *Service) toOccupant(o *occupant, el *stream.Element) {
	for _, c := range o.real {
		x := el.Copy()
		x.Set("to", c.jid)
		m.send(x)
	}
}

// broadcastPresence sends o's presence to every occupant (with 110 and
// selfCodes for o itself). Its children are built once for those who
// see o's real JID and once for those who do not, and shared by every
// copy (presenceNodes): one presence per recipient had made a join burst
// allocate ~1.35 KB per recipient (TestBroadcastPresenceAllocs).
func (m *Service) broadcastPresence(r *room, o *occupant, typ string, codes, selfCodes []int) {
	from := m.roomJID(r.name) + "/" + o.nick
	fromJID, fromErr := jid.Parse(from)
	var shown, hidden []stream.Node
	for _, to := range r.sortedOccupants() {
		var nodes []stream.Node
		switch {
		case to == o:
			nodes = m.presenceNodes(r, o, typ, true, append(append([]int{110}, codes...), selfCodes...))
		case r.canSeeJIDs(to):
			if shown == nil {
				shown = m.presenceNodes(r, o, typ, true, codes)
			}
			nodes = shown
		default:
			if hidden == nil {
				hidden = m.presenceNodes(r, o, typ, false, codes)
			}
			nodes = hidden
		}
		for _, c := range to.real {
			m.sendFrom(m.presenceTo(o, from, typ, c.jid, nodes), fromJID, fromErr)
		}
	}
}

// presencesTo sends the newcomer o (its only client, full JID real) the
// presence of every occupant already there, each with its attributes
// allocated at their final size and its addresses parsed once (the other
// half of a join burst's presences, see broadcastPresence).
func (m *Service) presencesTo(r *room, o *occupant, real jid.JID) {
	show := r.canSeeJIDs(o)
	to := o.real[0].jid
	prefix := m.roomJID(r.name) + "/"
	for _, x := range r.sortedOccupants() {
		from := prefix + x.nick
		p := m.presenceTo(x, from, "", to, m.presenceNodes(r, x, "", show, nil))
		fromJID, err := jid.Parse(from)
		if err != nil {
			m.send(p)
			continue
		}
		m.srv.RouteParsed(p, fromJID, real)
	}
}

// sendFrom sends el whose from address is parsed already (fromErr: it
// did not parse, and Route leaves it empty as before).
func (m *Service) sendFrom(el *stream.Element, from jid.JID, fromErr error) {
	to, err := jid.Parse(el.Get("to"))
	if fromErr != nil || err != nil {
		m.send(el)
		return
	}
	m.srv.RouteParsed(el, from, to)
}

// presence is presence to room@host/nick.
func (m *Service) presence(st *server.Stanza) {
	nick := st.To.Resourcepart()
	switch st.Type() {
	case "":
		if nick == "" {
			m.presenceError(st, server.ErrJIDMalformed)
			return
		}
		m.join(st, nick)
	case "unavailable":
		m.leave(st)
	}
}

// presenceError answers a join with a presence error from the room/nick,
// with the muc x echoed (XEP-0045 §7.2).
func (m *Service) presenceError(st *server.Stanza, err error) {
	m.bounce(st, err)
}

func (m *Service) join(st *server.Stanza, nick string) {
	name := st.To.Localpart()
	bare := bareOf(st.From)
	key := foldNick(nick)
	if key == "" {
		m.presenceError(st, withText(server.ErrJIDMalformed, "not a valid nickname"))
		return
	}
	r := m.lookup(name)
	created := false
	if r == nil {
		if !m.o.OpenCreation && !m.srv.LocalSender(st) {
			m.presenceError(st, withText(errNotAllowed, "only members of this server may create rooms"))
			return
		}
		creator := ""
		if m.srv.IsLocal(st.From) {
			creator = st.From.Localpart()
		}
		var err error
		r, created, err = m.create(name, bare, creator, defaultConfig(), m.lockUntil(st))
		if err != nil {
			m.presenceError(st, err)
			return
		}
	} else {
		r.mu.Lock()
		m.flush(r) // the room's messages before its occupants change (fanout.go)
	}
	defer r.mu.Unlock()
	if r.gone {
		m.presenceError(st, server.ErrItemNotFound)
		return
	}
	if !created && r.lockedFor(bare, m.o.Now()) {
		// §10.1.1: until the owner configures it, the room is not
		// there for anyone else (lock.go).
		m.presenceError(st, withText(server.ErrItemNotFound, "this room is locked until its owner configures it"))
		return
	}
	pres := cleanPresence(st.El)
	if o := r.occupantOf(st.From); o != nil {
		if foldNick(o.nick) == key {
			// A presence update (status, show): to everyone.
			o.setPresence(st.From.String(), pres)
			m.broadcastPresence(r, o, "", nil, nil)
			return
		}
		m.changeNick(st, r, o, nick, key)
		return
	}
	aff := r.aff(bare)
	switch {
	case aff == "outcast":
		m.presenceError(st, withText(errForbidden, "you are banned from this room"))
		return
	case r.st.Config.MembersOnly && affRank(aff) < affRank("member"):
		m.presenceError(st, withText(errRegistration, "this room is for members only"))
		return
	case r.st.Config.Password != "" && affRank(aff) < affRank("admin") && joinPassword(st.El) != r.st.Config.Password:
		m.presenceError(st, withText(errNotAuth, "a password is needed"))
		return
	}
	o := r.occ[key]
	if o != nil && o.bare != bare {
		m.presenceError(st, withText(errConflict, "that nickname is taken"))
		return
	}
	if b := r.reservedBy(key); b != "" && b != bare {
		m.presenceError(st, withText(errConflict, "that nickname is registered to someone else"))
		return
	}
	if o == nil && len(r.occ) >= m.o.MaxOccupants {
		m.presenceError(st, withText(server.ErrServiceUnavailable, "the room is full"))
		return
	}
	if o != nil {
		// Another client of the same member under the same nick.
		o.setPresence(st.From.String(), pres)
		for _, x := range r.sortedOccupants() {
			if x != o {
				m.sendTo(st.From.String(), m.presenceOf(r, x, o, ""))
			}
		}
		m.sendTo(st.From.String(), m.presenceOf(r, o, o, "", append([]int{110}, m.selfCodes(r, false)...)...))
		m.sendHistory(r, st.From.String(), st.El.Child(NS, "x"))
		m.sendSubject(r, st.From.String())
		return
	}
	o = r.slab.newOccupant(nick, bare, st.From.String(), pres, r.defaultRole(aff), m.occupantID(r.name, bare))
	// Existing occupants first, then the newcomer's own presence last
	// (§7.2.3), then history and subject.
	m.presencesTo(r, o, st.From)
	if key == o.nick {
		key = o.nick // the map keeps the occupant's string, not a copy
	}
	r.occ[key] = o
	m.broadcastPresence(r, o, "", nil, m.selfCodes(r, created))
	m.sendHistory(r, st.From.String(), st.El.Child(NS, "x"))
	m.sendSubject(r, st.From.String())
}

// selfCodes are the status codes of a newcomer's own presence: 100 in a
// non-anonymous room (XEP-0045 §7.2.3 — also 172 in its config change
// form), 170 because the room is archived, 201 when the join made it.
func (m *Service) selfCodes(r *room, created bool) []int {
	var c []int
	if r.st.Config.WhoIs == "anyone" {
		c = append(c, 100)
	}
	c = append(c, 170)
	if created {
		c = append(c, 201)
	}
	return c
}

func joinPassword(el *stream.Element) string {
	if x := el.Child(NS, "x"); x != nil {
		return x.ChildText(NS, "password")
	}
	return ""
}

func (m *Service) sendTo(to string, el *stream.Element) {
	el.Set("to", to)
	m.send(el)
}

// changeNick (XEP-0045 §7.6): unavailable with 303 and the new nick,
// then available under the new one.
func (m *Service) changeNick(st *server.Stanza, r *room, o *occupant, nick, key string) {
	if x := r.occ[key]; x != nil && x != o {
		m.presenceError(st, withText(errConflict, "that nickname is taken"))
		return
	}
	if b := r.reservedBy(key); b != "" && b != o.bare {
		m.presenceError(st, withText(errConflict, "that nickname is registered to someone else"))
		return
	}
	for _, to := range r.sortedOccupants() {
		p := m.presenceOf(r, o, to, "unavailable", 303)
		// The occupant stays, with its role (§7.6 example: the 303
		// presence has the role it keeps; "none" would tell clients a
		// visitor or moderator left the room).
		p.Child(NSUser, "x").Child(NSUser, "item").Set("role", o.role)
		p.Child(NSUser, "x").Child(NSUser, "item").Set("nick", nick)
		if to == o {
			p.Child(NSUser, "x").Add(stream.New(NSUser, "status", "code", "110"))
		}
		m.toOccupantOwned(to, p)
	}
	delete(r.occ, foldNick(o.nick))
	o.nick = nick
	o.setPresence(st.From.String(), cleanPresence(st.El))
	r.occ[key] = o
	m.broadcastPresence(r, o, "", nil, nil)
}

// leave: the client st.From leaves; the occupant goes once its last
// client has.
func (m *Service) leave(st *server.Stanza) {
	r := m.lookup(st.To.Localpart())
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m.flush(r) // a message sent just before leaving goes out first (fanout.go)
	m.removeClient(r, st.From.String(), cleanPresence(st.El))
}

// removeClient drops one client of an occupant; last holds its
// unavailable presence (status text) or nil.
func (m *Service) removeClient(r *room, real string, last *stream.Element) {
	j, err := jid.Parse(real)
	if err != nil {
		return
	}
	o := r.occupantOf(j)
	if o == nil {
		return
	}
	if len(o.real) > 1 {
		if i := o.clientIdx(real); i >= 0 {
			o.real = slices.Delete(o.real, i, i+1)
		}
		p := m.presenceOf(r, o, o, "unavailable", 110)
		m.sendTo(real, p)
		return
	}
	for _, to := range r.sortedOccupants() {
		p := m.presenceOf(r, o, to, "unavailable")
		if last != nil {
			if s := last.Child(stream.NSClient, "status"); s != nil {
				p.Add(s.Copy())
			}
		}
		if to == o {
			p.Child(NSUser, "x").Add(stream.New(NSUser, "status", "code", "110"))
		}
		m.toOccupantOwned(to, p)
	}
	r.drop(o)
	m.emptied(r)
}

// emptied removes a temporary room its last occupant left.
func (m *Service) emptied(r *room) {
	if len(r.occ) == 0 && !r.st.Config.Persistent {
		if err := m.remove(r); err != nil {
			m.srv.Log.Error("muc: remove temporary room", "room", r.name, "err", err)
		}
	}
}

// deliveryFailed: a stanza the room sent to a client bounced, so the
// client is gone (its session ended without unavailable presence reaching
// the room): it leaves.
func (m *Service) deliveryFailed(st *server.Stanza) {
	if st.To.Localpart() == "" || st.From.Resourcepart() == "" {
		return
	}
	r := m.lookup(st.To.Localpart())
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m.flush(r)
	m.removeClient(r, st.From.String(), nil)
}

// kickOut removes every client of o with the given status code (307
// kick, 301 ban, 321 affiliation change in a members-only room); actor is
// the moderator's nick.
func (m *Service) kickOut(r *room, o *occupant, code int, actor, reason string) {
	for _, to := range r.sortedOccupants() {
		p := m.presenceOf(r, o, to, "unavailable", code)
		item := p.Child(NSUser, "x").Child(NSUser, "item")
		if actor != "" {
			item.Add(stream.New(NSUser, "actor", "nick", actor))
		}
		if reason != "" {
			item.Add(stream.New(NSUser, "reason").AddText(reason))
		}
		if to == o {
			p.Child(NSUser, "x").Add(stream.New(NSUser, "status", "code", "110"))
		}
		m.toOccupantOwned(to, p)
	}
	r.drop(o)
}
