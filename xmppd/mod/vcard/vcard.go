// Package vcard is XEP-0054 vcard-temp: each member's own card (name,
// avatar), readable by others.
//
// vcard-temp and XEP-0292 vCard4 (the PEP node urn:xmpp:vcard4, reached
// through server.VCard4) are one card, as with Prosody's mod_vcard_legacy:
// a set rewrites the vCard4's mapped properties (mod/internal/vcardconv)
// before the card is stored, and a get answers with the vCard4's mapped
// properties in place of the stored ones, as the node's access model lets
// the reader see them. Once a vCard4 client changed the card
// (server.VCard4Changed), the stored card keeps only what vCard4 does not
// map (PHOTO, NOTE, ...), so a deleted vCard4 does not bring back an older
// name.
package vcard

import (
	"strings"

	"github.com/hearthchat/hearth/xmppd/mod/internal/vcardconv"
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
		if v4 := srv.VCard4(); v4 != nil {
			card, exists, err := v4.Get(st.To.Localpart(), st.From)
			if err != nil {
				return nil, err
			}
			if exists {
				return vcardconv.View(el, card), nil
			}
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
		// The vCard4 first: when it cannot take the card (PEP storage
		// full), nothing is stored and the client is told.
		if v4 := srv.VCard4(); v4 != nil {
			if err := v4.SetFromLegacy(st.To.Localpart(), card); err != nil {
				return nil, err
			}
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
	server.VCard4Changed.On(srv, func(user string) { stripMapped(srv, kv, user) })
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

// stripMapped drops from user's stored card the properties the vCard4
// speaks for, after a vCard4 client changed it.
func stripMapped(srv *server.Server, kv *xmlkv.KV, user string) {
	key := store.Key(user, "")
	card, err := kv.Get(key)
	if err != nil {
		srv.Log.Error("vcard: after a vCard4 change", "user", user, "err", err)
		return
	}
	if card == nil {
		return
	}
	s := vcardconv.Strip(card)
	if len(s.Children()) == len(card.Children()) {
		return
	}
	if err := kv.Put(key, s); err != nil {
		srv.Log.Error("vcard: after a vCard4 change", "user", user, "err", err)
	}
}
