package muc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// IQs between occupants (XEP-0045 §7.5 for messages; the same for iqs, as
// Prosody and ejabberd do): an iq get or set from an occupant to
// room@host/nick goes on to that occupant's client with 'from' rewritten
// to the asker's occupant JID, so that neither learns the other's real
// address in a semi-anonymous room; the answer comes back to the room and
// goes on to the asker's client, from the occupant JID it asked.
//
// vCard and pubsub queries (vcard-temp, vCard4, pubsub — avatars) go to
// the occupant's account (its bare JID), whose server answers for it: a
// client does not answer vCard queries itself.
//
// Nothing is kept per request: the forwarded iq's id carries the asker's
// full JID and id, sealed with an HMAC under the service's key over the
// room, both nicks and the address it was sent to. An answer whose id does
// not open, or that comes from anywhere else, is dropped, so an occupant
// cannot make the room send an iq result to someone who did not ask.

// MaxForwardedIQID bounds the id of an iq the room passes on (it is
// carried in the forwarded id).
const MaxForwardedIQID = 256

// bareTarget says whether a payload namespace is answered by the
// occupant's account rather than one of its clients (a switch, not a map:
// modules keep no package-level state, TestModulesDoNotImportEachOther).
func bareTarget(space string) bool {
	switch space {
	case nsVCard, "urn:ietf:params:xml:ns:vcard-4.0", "http://jabber.org/protocol/pubsub":
		return true
	}
	return false
}

// allowPMValues are muc#roomconfig_allowpm's options.
var allowPMValues = []string{"anyone", "participants", "moderators", "none"}

// mayPM: may o send private messages and iqs to other occupants?
func (r *room) mayPM(o *occupant) bool {
	switch r.st.Config.AllowPM {
	case "", "anyone":
		return true
	case "participants":
		return o.role == "participant" || o.role == "moderator"
	case "moderators":
		return o.role == "moderator"
	}
	return false
}

var errNoPM = withText(errForbidden, "private messages are not allowed in this room")

// occupantIQ takes an iq get or set to room@host/nick (HandleFullIQ).
func (m *Service) occupantIQ(st *server.Stanza) {
	if st.To.Localpart() == "" {
		m.bounce(st, server.ErrServiceUnavailable)
		return
	}
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
	from := r.occupantOf(st.From)
	payload := st.El.FirstChild()
	isPing := st.Type() == "get" && payload.Space == nsPing && payload.Local == "ping"
	if from == nil {
		// XEP-0410: a client that is no longer joined learns it from
		// not-acceptable (also for anything else it sends).
		m.bounce(st, withText(server.ErrNotAcceptable, "you are not in this room"))
		return
	}
	to := r.occ[foldNick(st.To.Resourcepart())]
	if to == nil {
		m.bounce(st, withText(server.ErrItemNotFound, "no such occupant"))
		return
	}
	if isPing && to == from {
		// XEP-0410 self-ping: the room answers while the client is in.
		res := stream.New(stream.NSClient, "iq", "type", "result", "id", st.El.Get("id"),
			"from", st.El.Get("to"), "to", st.From.String())
		m.send(res)
		return
	}
	if !r.mayPM(from) {
		m.bounce(st, errNoPM)
		return
	}
	if len(st.El.Get("id")) > MaxForwardedIQID {
		m.bounce(st, withText(server.ErrBadRequest, "iq id too long to pass on"))
		return
	}
	target := firstReal(to)
	if bareTarget(payload.Space) {
		target = to.bare
	}
	fromOcc := m.roomJID(r.name) + "/" + from.nick
	fwd := st.El.Copy()
	fwd.Set("from", fromOcc)
	fwd.Set("to", target)
	fwd.Set("id", m.sealIQ(r.name, from.nick, to.nick, st.From.String(), st.El.Get("id"), target))
	m.send(fwd)
}

// occupantIQAnswer passes an answer to a forwarded iq back to the asker.
func (m *Service) occupantIQAnswer(st *server.Stanza) {
	if st.Type() != "result" && st.Type() != "error" {
		return
	}
	if st.To.Localpart() == "" || st.To.Resourcepart() == "" {
		return
	}
	asker, id, toNick, ok := m.openIQ(st.To.Localpart(), st.To.Resourcepart(), st.El.Get("id"), st.From.String())
	if !ok {
		return
	}
	out := st.El.Copy()
	out.Set("from", m.roomJID(st.To.Localpart())+"/"+toNick)
	out.Set("to", asker)
	out.Set("id", id)
	m.send(out)
}

// sealIQ is the id a forwarded iq carries: "muc1" and the asker's full
// JID, its id and the target's nick, each base64, then the HMAC.
func (m *Service) sealIQ(room, fromNick, toNick, asker, id, target string) string {
	enc := base64.RawURLEncoding
	return "muc1." + enc.EncodeToString([]byte(asker)) + "." + enc.EncodeToString([]byte(id)) + "." +
		enc.EncodeToString([]byte(toNick)) + "." + enc.EncodeToString(m.iqMAC(room, fromNick, toNick, asker, id, target))
}

// openIQ checks an answer's id: it must be one sealIQ made for an iq from
// room/fromNick sent to target (the answer's sender).
func (m *Service) openIQ(room, fromNick, sealed, target string) (asker, id, toNick string, ok bool) {
	parts := strings.Split(sealed, ".")
	if len(parts) != 5 || parts[0] != "muc1" {
		return "", "", "", false
	}
	enc := base64.RawURLEncoding
	var dec [4][]byte
	for i := range dec {
		b, err := enc.DecodeString(parts[i+1])
		if err != nil {
			return "", "", "", false
		}
		dec[i] = b
	}
	asker, id, toNick = string(dec[0]), string(dec[1]), string(dec[2])
	if !hmac.Equal(dec[3], m.iqMAC(room, fromNick, toNick, asker, id, target)) {
		return "", "", "", false
	}
	return asker, id, toNick, true
}

func (m *Service) iqMAC(room, fromNick, toNick, asker, id, target string) []byte {
	h := hmac.New(sha256.New, m.key)
	for _, s := range []string{"muc-iq", room, fromNick, toNick, asker, id, target} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum(nil)[:16]
}
