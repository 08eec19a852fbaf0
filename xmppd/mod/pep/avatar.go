package pep

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// XEP-0084 avatars, kept in step with the vCard PHOTO (XEP-0398) through
// the server's AvatarPublished / VCardPhotoSet events (the vcard module
// owns the card), and announced in presence as XEP-0153's
// vcard-temp:x:update hash.
const (
	NodeAvatarData = "urn:xmpp:avatar:data"
	NodeAvatarMeta = "urn:xmpp:avatar:metadata"
	nsUpdate       = "vcard-temp:x:update"
	nsConversion   = "urn:xmpp:pep-vcard-conversion:0"
)

func (m *mod) registerAvatar() {
	m.srv.AddFeature(server.ToAccount, nsConversion)
	server.VCardPhotoSet.On(m.srv, m.fromVCard)
}

// avatarPublished runs after a publish to the metadata node: the image it
// names, if the account holds it in the data node, goes to the vCard.
func (m *mod) avatarPublished(user string, meta *stream.Element) {
	info := meta.Child(NodeAvatarMeta, "info")
	if info == nil {
		// §4.5: empty metadata disables the avatar.
		server.AvatarPublished.Fire(m.srv, server.Avatar{User: user})
		return
	}
	_, items, err := m.db.node(user, NodeAvatarData, []string{info.Get("id")}, 0)
	if err != nil || len(items) == 0 {
		return // data elsewhere (a URL) or not published: the vCard keeps its photo
	}
	data := items[0].FirstChild()
	if data == nil || data.Space != NodeAvatarData {
		return
	}
	server.AvatarPublished.Fire(m.srv, server.Avatar{User: user, Type: info.Get("type"), Data: strings.Join(strings.Fields(data.Text()), "")})
}

// fromVCard publishes a vCard's PHOTO as the XEP-0084 avatar (data, then
// metadata, each notified like a client's publish).
func (m *mod) fromVCard(a server.Avatar) {
	meta := stream.New(NodeAvatarMeta, "metadata")
	if a.Data != "" {
		raw, err := base64.StdEncoding.DecodeString(a.Data)
		if err != nil {
			return // not an image we can hash: XEP-0153 clients would not show it either
		}
		sum := sha1.Sum(raw)
		id := hex.EncodeToString(sum[:])
		if cur := m.avatarID(a.User); cur == id {
			return // already the PEP avatar (it came from there)
		}
		typ := a.Type
		if typ == "" {
			typ = "image/png"
		}
		data := stream.New(NS, "item", "id", id).Add(stream.New(NodeAvatarData, "data").AddText(a.Data))
		if len(data.Append(nil, "")) > MaxItemSize {
			return
		}
		if !m.publishOwn(a.User, NodeAvatarData, data) {
			return
		}
		meta.Add(stream.New(NodeAvatarMeta, "info", "id", id, "type", typ, "bytes", strconv.Itoa(len(raw))))
	} else if m.avatarID(a.User) == "" {
		return
	}
	id := "current"
	if info := meta.FirstChild(); info != nil {
		id = info.Get("id")
	}
	m.publishOwn(a.User, NodeAvatarMeta, stream.New(NS, "item", "id", id).Add(meta))
}

// publishOwn publishes item on user's node on the server's initiative.
func (m *mod) publishOwn(user, node string, item *stream.Element) bool {
	cfg, err := m.db.publish(user, node, nil, item)
	if err != nil {
		m.srv.Log.Warn("pep: avatar from vCard", "user", user, "node", node, "err", err)
		return false
	}
	m.notify(user, node, cfg, stream.New(NSEvent, "items", "node", node).Add(eventItem(item)))
	return true
}

// avatarID is the id (SHA-1 of the image) of user's current avatar, "" if none.
func (m *mod) avatarID(user string) string {
	_, items, err := m.db.node(user, NodeAvatarMeta, nil, 1)
	if err != nil || len(items) == 0 {
		return ""
	}
	if p := items[0].FirstChild(); p != nil {
		if info := p.Child(NodeAvatarMeta, "info"); info != nil {
			return info.Get("id")
		}
	}
	return ""
}

// stampUpdate puts the avatar hash into an available presence (XEP-0398
// §5 with XEP-0153 §4.1: the server adds or replaces the client's
// vcard-temp:x:update), so contacts on vCard-only clients see changes.
func (m *mod) stampUpdate(s *session.Session, el *stream.Element) {
	id := m.avatarID(s.User)
	if id == "" {
		return
	}
	el.RemoveChildren(nsUpdate, "x")
	el.Add(stream.New(nsUpdate, "x").Add(stream.New(nsUpdate, "photo").AddText(id)))
}
