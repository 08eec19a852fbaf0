package muc

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"

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
