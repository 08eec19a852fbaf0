// Package vcard is XEP-0054 vcard-temp: each member's own card (name,
// avatar), readable by others.
package vcard

import (
	"strings"

	"github.com/hearthchat/hearth/xmppd/mod/internal/xmlkv"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "vcard-temp"

// MaxSize bounds a stored vCard (avatars are the bulk).
const MaxSize = 128 << 10

// Register adds vcard-temp.
func Register(srv *server.Server) {
	kv := xmlkv.New(srv.Store, "vcard")
	srv.AddFeature(server.ToServer, ns)
	srv.HandleIQ(server.ToAccount, "get", ns, "vCard", func(st *server.Stanza) (*stream.Element, error) {
		el, err := kv.Get(store.Key(st.To.Localpart(), ""))
		if err != nil {
			return nil, err
		}
		if el == nil {
			return stream.New(ns, "vCard"), nil
		}
		return el, nil
	})
	srv.HandleIQ(server.ToAccount, "set", ns, "vCard", func(st *server.Stanza) (*stream.Element, error) {
		if st.Origin == nil || st.To.Localpart() != st.From.Localpart() {
			return nil, server.ErrForbidden
		}
		card := st.El.FirstChild()
		if len(card.Append(nil, stream.NSClient)) > MaxSize {
			return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "vCard too large"}
		}
		if err := kv.Put(store.Key(st.To.Localpart(), ""), card); err != nil {
			return nil, err
		}
		// XEP-0398: a PHOTO becomes the PEP avatar (an empty one removes it).
		if photo := card.Child(ns, "PHOTO"); photo != nil {
			server.VCardPhotoSet.Fire(srv, server.Avatar{User: st.To.Localpart(),
				Type: strings.TrimSpace(photo.ChildText(ns, "TYPE")), Data: strings.Join(strings.Fields(photo.ChildText(ns, "BINVAL")), "")})
		}
		return nil, nil
	})
	server.AvatarPublished.On(srv, func(a server.Avatar) { photoFromPEP(srv, kv, a) })
	srv.OnAccountDeleted(func(user string) { kv.DeleteUser(user) })
}

// photoFromPEP writes an avatar published over PEP into the vCard's PHOTO
// (XEP-0398 §4), so clients that read only vCards see it.
func photoFromPEP(srv *server.Server, kv *xmlkv.KV, a server.Avatar) {
	key := store.Key(a.User, "")
	card, err := kv.Get(key)
	if err != nil {
		srv.Log.Error("vcard: avatar from PEP", "user", a.User, "err", err)
		return
	}
	if card == nil {
		card = stream.New(ns, "vCard")
	}
	card.RemoveChildren(ns, "PHOTO")
	if a.Data != "" {
		card.Add(stream.New(ns, "PHOTO").Add(stream.New(ns, "TYPE").AddText(a.Type), stream.New(ns, "BINVAL").AddText(a.Data)))
	}
	if len(card.Append(nil, stream.NSClient)) > MaxSize {
		return // the PEP item limit keeps avatars below this; a full card keeps its old photo
	}
	if err := kv.Put(key, card); err != nil {
		srv.Log.Error("vcard: avatar from PEP", "user", a.User, "err", err)
	}
}
