package muc

import (
	"slices"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Mentions of absent members (issue 12: "mentions reaching offline
// members of members-only rooms"). A member who is not in the room gets
// no copy of a room message; when one names them, server.Mentioned tells
// whoever listens (push wakes their phones, which then find the message
// in the room archive). No copy is stored for the member: the archive
// has it, and a groupchat message from room/nick delivered outside the
// room would land in a client as if the member had joined.
//
// The members named are found where the message is accepted (under the
// room's mutex, against the occupants and affiliations it was accepted
// with) and carried on the message's post; they are woken only when the
// post leaves the outbox after its archive commit succeeded (fanout.go).
// A commit that fails bounces the message to its sender and wakes nobody:
// before, the push went out first, so a failed commit still woke a phone
// that then found nothing in the archive (TestMentionAfterCommit).

const (
	nsReference = "urn:xmpp:reference:0"
	nsCorrect   = "urn:xmpp:message-correct:0"
)

// maxMentions bounds the members one message can reach: a message
// listing every member's name must not wake a whole club's phones.
const maxMentions = 20

// maxWordLookups bounds the account look-ups for a room of every local
// account (AllLocal), where members are not listed and words of the
// body are tried as account names.
const maxWordLookups = 64

// mentions is the server.Mentioned event for each member out names who
// is not in the room (r locked; o the sender), to fire once out is
// committed. Only members-only rooms: in an open room anyone could wake
// members' phones.
func (m *Service) mentions(r *room, o *occupant, out *stream.Element) []server.Mention {
	if !r.st.Config.MembersOnly {
		return nil
	}
	if _, _, retract := retractionTarget(out); retract || out.Child(nsCorrect, "replace") != nil {
		// A retraction's fallback body, or a correction of a message
		// that already woke them: nothing new to be woken for.
		return nil
	}
	body := out.ChildText(stream.NSClient, "body")
	refs := mentionRefs(out)
	if body == "" && len(refs) == 0 {
		return nil
	}
	text := server.FoldText(body)
	roomJID := m.roomJID(r.name)
	found := map[string]bool{} // bare JIDs named
	for _, u := range refs {
		j, err := jid.Parse(u)
		if err != nil {
			continue
		}
		if j.Bare().String() == roomJID {
			// xmpp:room@host/nick: the member whose nick it is.
			if b := m.byNick(r, j.Resourcepart()); b != "" {
				found[b] = true
			}
			continue
		}
		found[j.Bare().String()] = true
	}
	if text != "" {
		named := func(bare string) bool {
			if n := r.st.Nicks[bare]; n != "" && server.ContainsName(text, server.FoldText(n)) {
				return true
			}
			j, err := jid.Parse(bare)
			return err == nil && j.Localpart() != "" && server.ContainsName(text, server.FoldText(j.Localpart()))
		}
		for bare := range r.st.Affs {
			if named(bare) {
				found[bare] = true
			}
		}
		for bare := range r.st.Nicks {
			if named(bare) {
				found[bare] = true
			}
		}
		if r.st.AllLocal {
			for i, w := range words(text) {
				if i >= maxWordLookups {
					break
				}
				if m.srv.AccountExists(w) {
					found[w+"@"+m.srv.Domain] = true
				}
			}
		}
	}
	var users []string
	for bare := range found {
		j, err := jid.Parse(bare)
		if err != nil || j.Localpart() == "" || !strings.EqualFold(j.Domainpart(), m.srv.Domain) {
			continue // push reaches only this server's accounts
		}
		if bare == o.bare || affRank(r.aff(bare)) < affRank("member") || len(r.occupantsOfBare(bare)) > 0 {
			continue
		}
		users = append(users, j.Localpart())
	}
	slices.Sort(users)
	if len(users) > maxMentions {
		users = users[:maxMentions]
	}
	var ms []server.Mention
	for _, u := range users {
		ms = append(ms, server.Mention{User: u, Room: roomJID, From: out.Get("from"), Sender: o.bare, Body: body})
	}
	return ms
}

// byNick is the member whose registered nickname or account name is nick
// ("" if none).
func (m *Service) byNick(r *room, nick string) string {
	k := foldNick(nick)
	if k == "" {
		return ""
	}
	for bare, n := range r.st.Nicks {
		if foldNick(n) == k {
			return bare
		}
	}
	if j, err := jid.Parse(nick + "@" + m.srv.Domain); err == nil {
		return j.Bare().String()
	}
	return ""
}

// mentionRefs are the xmpp: URIs of out's XEP-0372 mention references.
func mentionRefs(out *stream.Element) []string {
	var uris []string
	for _, c := range out.Children() {
		if c.Space == nsReference && c.Local == "reference" && c.Get("type") == "mention" {
			if u, ok := strings.CutPrefix(c.Get("uri"), "xmpp:"); ok && len(uris) < maxMentions {
				uris = append(uris, u)
			}
		}
	}
	return uris
}

// words are text's distinct candidate account names: runs of letters,
// digits and ._- without leading or trailing punctuation.
func words(text string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(text, func(r rune) bool { return !server.IsNameRune(r) && r != '.' && r != '-' }) {
		w = strings.Trim(w, ".-")
		if w != "" && !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}
