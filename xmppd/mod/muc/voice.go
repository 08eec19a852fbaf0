package muc

import (
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Voice requests (XEP-0045 §7.13, §8.6): in a moderated room a visitor
// sends the room a muc#request form asking for the participant role; the
// room sends every moderator an approval form naming the visitor; a
// moderator who submits it with muc#request_allow true grants voice — the
// same role change a moderator's muc#admin item makes, broadcast to the
// room. A form with muc#request_allow is an answer, one without it a
// request (as ejabberd tells them apart).

// DefaultVoiceRequestInterval: one occupant's voice requests reach the
// moderators at most this often (a visitor cannot flood them; ejabberd
// waits 30 minutes, this is a club).
const DefaultVoiceRequestInterval = time.Minute

// voiceForm handles a muc#request form sent to the room.
func (m *Service) voiceForm(st *server.Stanza, r *room, vals map[string][]string) {
	o := r.occupantOf(st.From)
	if o == nil {
		m.bounce(st, withText(server.ErrNotAcceptable, "only occupants may ask for voice"))
		return
	}
	if _, answer := vals["muc#request_allow"]; answer {
		m.voiceAnswer(st, r, o, vals)
		return
	}
	if role := first(vals["muc#role"]); role != "" && role != "participant" {
		m.bounce(st, withText(server.ErrBadRequest, "only voice (the participant role) may be requested"))
		return
	}
	if o.role != "visitor" {
		// Already has voice (or is a moderator): nothing to ask for.
		return
	}
	now := m.o.Now().UnixNano()
	if o.voiceAsked != 0 && time.Duration(now-o.voiceAsked) < m.o.VoiceRequestInterval {
		m.bounce(st, withText(server.Err("wait", "resource-constraint"), "the moderators have your request; ask again later"))
		return
	}
	o.voiceAsked = now
	// Title and instructions before the fields (XEP-0004's schema).
	f := &form{el: stream.New(nsData, "x", "type", "form")}
	f.el.Add(stream.New(nsData, "title").AddText("Voice request"))
	f.el.Add(stream.New(nsData, "instructions").AddText(o.nick + " asks to speak in this room. Grant voice?"))
	f.field("FORM_TYPE", "hidden", nsRequest)
	roleField := f.field("muc#role", "list-single", "participant")
	roleField.Set("label", "Requested role")
	f.field("muc#jid", "jid-single", st.From.String()).Set("label", "User ID")
	f.field("muc#roomnick", "text-single", o.nick).Set("label", "Room nickname")
	f.field("muc#request_allow", "boolean", "0").Set("label", "Grant voice to this person?")
	for _, mod := range r.sortedOccupants() {
		if mod.role != "moderator" {
			continue
		}
		msg := stream.New(stream.NSClient, "message", "from", m.roomJID(r.name))
		msg.Add(f.el.Copy())
		m.toOccupant(mod, msg)
	}
}

// voiceAnswer is a moderator's submitted approval form.
func (m *Service) voiceAnswer(st *server.Stanza, r *room, actor *occupant, vals map[string][]string) {
	if actor.role != "moderator" {
		m.bounce(st, withText(errNotAllowed, "only moderators may answer voice requests"))
		return
	}
	allow, ok := parseBool(first(vals["muc#request_allow"]))
	if !ok {
		m.bounce(st, withText(server.ErrBadRequest, "muc#request_allow: not a boolean"))
		return
	}
	if !allow {
		return // declined: the visitor stays one
	}
	// The visitor by its client's JID (what the form carried), else by
	// nick; one that left or changed nick in between is not found.
	var target *occupant
	if s := first(vals["muc#jid"]); s != "" {
		if j, err := jid.Parse(s); err == nil {
			if j.Resourcepart() != "" {
				target = r.occupantOf(j)
			} else if os := r.occupantsOfBare(j.String()); len(os) == 1 {
				target = os[0]
			}
		}
	} else if n := first(vals["muc#roomnick"]); n != "" {
		target = r.occ[foldNick(n)]
	}
	if target == nil {
		m.bounce(st, withText(server.ErrItemNotFound, "that occupant is no longer in the room"))
		return
	}
	if target.role != "visitor" {
		return // has voice already
	}
	owners := r.owners()
	c := change{target: target, role: "participant"}
	if err := r.allowed(r.aff(actor.bare), actor, c, &owners); err != nil {
		m.bounce(st, err)
		return
	}
	target.role = "participant"
	m.broadcastPresence(r, target, "", nil, nil)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
