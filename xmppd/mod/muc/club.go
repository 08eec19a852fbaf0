package muc

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Rooms the server itself runs: the club's default room, where every
// account of the box is a member (AllLocal: also accounts made while the
// server was stopped, with no event), and a room per circle of the admin
// pages, whose members the admin pages set (xmppd/admindeps.go). They have
// no creator (nobody's room budget) and no owner: the admin pages manage
// them.

// DefaultRoom is the localpart of the club's default room.
const DefaultRoom = "everyone"

// serverRoomConfig: members-only, persistent, listed, members see each
// other's addresses (a club's members know each other).
func serverRoomConfig(title string) Config {
	c := defaultConfig()
	c.Name = title
	c.MembersOnly = true
	c.WhoIs = "anyone"
	return c
}

// EnsureRoom makes the server room name (a localpart) titled title if it
// does not exist; allLocal makes every account a member.
func (m *Service) EnsureRoom(name, title string, allLocal bool) error {
	j, err := jid.New(name, m.host, "")
	if err != nil || j.Localpart() != name {
		return fmt.Errorf("muc: bad room name %q", name)
	}
	r, created, err := m.create(name, "", "", serverRoomConfig(title), 0)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	if created || r.st.AllLocal != allLocal {
		r.st.AllLocal = allLocal
		return m.save(r)
	}
	return nil
}

// SetMember makes user (a local account) a member of room name, or takes
// the membership away (an occupant then leaves with 321). Owners and
// admins keep their affiliation.
func (m *Service) SetMember(name, user string, member bool) error {
	r := m.lookup(name)
	if r == nil {
		return fmt.Errorf("muc: no room %q", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return fmt.Errorf("muc: no room %q", name)
	}
	m.flush(r) // the room's messages before the change (fanout.go)
	bare := user + "@" + m.srv.Domain
	cur, has := r.st.Affs[bare]
	if has && affRank(cur) >= affRank("admin") {
		return nil
	}
	old := r.st.Affs
	next := make(map[string]string, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	if member {
		if cur == "member" {
			return nil
		}
		next[bare] = "member"
	} else {
		if !has {
			return nil
		}
		delete(next, bare)
	}
	r.st.Affs = next
	if err := m.save(r); err != nil {
		r.st.Affs = old
		return err
	}
	m.tellAffiliation(r, bare, r.aff(bare))
	for _, o := range r.occupantsOfBare(bare) {
		if !member && r.st.Config.MembersOnly && affRank(r.aff(bare)) < affRank("member") {
			m.kickOut(r, o, 321, "", "")
		} else {
			o.role = r.defaultRole(r.aff(bare))
			m.broadcastPresence(r, o, "", nil, nil)
		}
	}
	return nil
}

// DestroyRoom ends room name, if it exists.
func (m *Service) DestroyRoom(name, reason string) error {
	r := m.lookup(name)
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return nil
	}
	d := stream.New(NSOwner, "destroy")
	if reason != "" {
		d.Add(stream.New(NSOwner, "reason").AddText(reason))
	}
	return m.destroy(r, d)
}

// CircleRoom is the room localpart of a circle: "circle-" and the name
// in lower-case letters and digits, with a short hash when anything was
// dropped, so that two names never share a room.
func CircleRoom(circle string) string {
	var b strings.Builder
	changed := false
	for _, c := range strings.ToLower(circle) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == ' ' || c == '-' || c == '_':
			b.WriteByte('-')
			changed = changed || c != '-'
		default:
			changed = true
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 40 {
		s, changed = s[:40], true
	}
	if changed || s != circle {
		sum := sha256.Sum256([]byte(circle))
		s += "-" + hex.EncodeToString(sum[:3])
	}
	return "circle-" + strings.TrimPrefix(s, "-")
}

// RoomJID is room@groups.<domain> for a localpart.
func (m *Service) RoomJID(name string) string { return m.roomJID(name) }

// Affiliation is bare's affiliation in room name; ok is false if there is
// no such room.
func (m *Service) Affiliation(name, bare string) (aff string, ok bool) {
	r := m.lookup(name)
	if r == nil {
		return "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return "", false
	}
	return r.aff(bare), true
}

// The club's default room lists its implicit members. Every account is a
// member of it (AllLocal) without an affiliation stored per account, so
// its member list (muc#admin, affiliation member) was empty, and Converse
// — which encrypts a room message with OMEMO to the devices of the JIDs
// in the room's member, admin and owner lists — found no devices and
// refused to encrypt there (closing note of stop 16). The list is now
// every local account, read from the account store when it is asked for:
// right without bookkeeping as accounts are added (also while the server
// was stopped) or removed. Occupants hear of an account added or removed
// as of a member list change (XEP-0045 §9.3/§9.4, affiliation messages,
// which Converse applies to its member list); circle rooms' members are
// stored affiliations (SetMember), told the same way.

// localMembers are the bare JIDs of the accounts an AllLocal room r
// (locked) counts as members beyond its stored affiliations, sorted; the
// box's own "_" accounts are left out (_health is nobody's contact).
func (m *Service) localMembers(r *room) ([]string, error) {
	if !r.st.AllLocal {
		return nil, nil
	}
	users, err := m.srv.Store.Users()
	if err != nil {
		return nil, fmt.Errorf("muc: list accounts for %s: %w", r.name, err)
	}
	out := make([]string, 0, len(users))
	for _, u := range users {
		if strings.HasPrefix(u, "_") {
			continue
		}
		bare := u + "@" + m.srv.Domain
		if _, stored := r.st.Affs[bare]; !stored {
			out = append(out, bare)
		}
	}
	sort.Strings(out)
	return out, nil
}

// listNick is the nick the member list gives bare in r (locked): its
// registered nickname, else its nick in the room if it is there.
func (r *room) listNick(bare string) string {
	if n := r.st.Nicks[bare]; n != "" {
		return n
	}
	for _, o := range r.occupantsOfBare(bare) {
		return o.nick
	}
	return ""
}

// tellAffiliation tells r's occupants (r locked) that bare, who is not in
// the room, now has affiliation aff (XEP-0045 §9.3: a members-only room's
// occupants learn of a member added or removed while away). An occupant's
// own change reaches the room as its presence instead. The JID goes only
// to those who may see real addresses.
func (m *Service) tellAffiliation(r *room, bare, aff string) {
	if r.gone || len(r.occupantsOfBare(bare)) > 0 {
		return
	}
	for _, to := range r.sortedOccupants() {
		if r.st.Config.WhoIs != "anyone" && to.role != "moderator" {
			continue
		}
		item := stream.New(NSUser, "item", "affiliation", aff, "jid", bare)
		if n := r.listNick(bare); n != "" {
			item.Set("nick", n)
		}
		msg := stream.New(stream.NSClient, "message", "from", m.roomJID(r.name))
		msg.Add(stream.New(NSUser, "x").Add(item))
		m.toOccupantOwned(to, msg)
	}
}

// watchClubAccounts keeps the occupants of AllLocal rooms told of
// accounts added and removed (the member list itself is read from the
// account store).
func (m *Service) watchClubAccounts() {
	tell := func(user, aff string) {
		if strings.HasPrefix(user, "_") {
			return
		}
		bare := user + "@" + m.srv.Domain
		m.mu.Lock()
		rooms := make([]*room, 0, 1)
		for _, r := range m.rooms {
			rooms = append(rooms, r)
		}
		m.mu.Unlock()
		for _, r := range rooms {
			r.mu.Lock()
			if r.st.AllLocal {
				if _, stored := r.st.Affs[bare]; !stored {
					m.flush(r) // after the messages accepted before it
					m.tellAffiliation(r, bare, aff)
				}
			}
			r.mu.Unlock()
		}
	}
	server.AccountRegistered.On(m.srv, func(reg server.Registration) { tell(reg.User, "member") })
	m.srv.OnAccountDeleted(func(user string) { tell(user, "none") })
}
