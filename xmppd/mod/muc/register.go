package muc

import (
	"strings"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Registered nicknames (XEP-0045 §7.10, §7.12): a member registers a nick
// with the room (jabber:iq:register); nobody else may then join or change
// to it, even in its case or width variants. Registering in an open room
// makes one a member; in a members-only room only members may register.

const (
	nsRegister    = "jabber:iq:register"
	nsRegForm     = NS + "#register"
	fieldRoomNick = "muc#register_roomnick"
)

// reservedBy is the bare JID that registered a nick folding to key, or "".
func (r *room) reservedBy(key string) string {
	for bare, n := range r.st.Nicks {
		if foldNick(n) == key {
			return bare
		}
	}
	return ""
}

func (m *Service) registerGet(st *server.Stanza) (*stream.Element, error) {
	r, err := m.roomOf(st)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	bare := bareOf(st.From)
	if r.aff(bare) == "outcast" {
		return nil, withText(errForbidden, "you are banned from this room")
	}
	q := stream.New(nsRegister, "query")
	if n, ok := r.st.Nicks[bare]; ok {
		q.Add(stream.New(nsRegister, "registered"))
		q.Add(stream.New(nsRegister, "username").AddText(n))
		return q, nil
	}
	f := newForm("form", nsRegForm)
	f.field(fieldRoomNick, "text-single").Add(stream.New(nsData, "required"))
	q.Add(f.el)
	return q, nil
}

func (m *Service) registerSet(st *server.Stanza) (*stream.Element, error) {
	r, err := m.roomOf(st)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	bare := bareOf(st.From)
	aff := r.aff(bare)
	if aff == "outcast" {
		return nil, withText(errForbidden, "you are banned from this room")
	}
	q := st.El.FirstChild()
	if q.Child(nsRegister, "remove") != nil {
		if _, ok := r.st.Nicks[bare]; !ok {
			return nil, nil
		}
		old := r.st.Nicks
		r.st.Nicks = copyMap(old)
		delete(r.st.Nicks, bare)
		if err := m.save(r); err != nil {
			r.st.Nicks = old
			return nil, err
		}
		return nil, nil
	}
	x := q.Child(nsData, "x")
	if x == nil || x.Get("type") != "submit" {
		return nil, withText(server.ErrBadRequest, "submit the registration form")
	}
	vals, ok := formValues(x, nsRegForm)
	if !ok || len(vals[fieldRoomNick]) != 1 {
		return nil, withText(server.ErrBadRequest, "one "+fieldRoomNick)
	}
	nick := strings.TrimSpace(vals[fieldRoomNick][0])
	key := foldNick(nick)
	if key == "" || len(nick) > 1023 {
		return nil, withText(server.ErrNotAcceptable, "not a valid nickname")
	}
	if r.st.Config.MembersOnly && affRank(aff) < affRank("member") {
		return nil, withText(errRegistration, "only members may register in this room")
	}
	if other := r.reservedBy(key); other != "" && other != bare {
		return nil, withText(errConflict, "that nickname is registered to someone else")
	}
	if o := r.occ[key]; o != nil && o.bare != bare {
		return nil, withText(errConflict, "that nickname is in use")
	}
	if len(r.st.Nicks) >= m.o.MaxAffiliations || len(r.st.Affs) >= m.o.MaxAffiliations {
		return nil, errResourceConstraint
	}
	oldNicks, oldAffs := r.st.Nicks, r.st.Affs
	r.st.Nicks = copyMap(oldNicks)
	r.st.Nicks[bare] = nick
	if aff == "none" {
		r.st.Affs = copyMap(oldAffs)
		r.st.Affs[bare] = "member"
	}
	if err := m.save(r); err != nil {
		r.st.Nicks, r.st.Affs = oldNicks, oldAffs
		return nil, err
	}
	return nil, nil
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}
