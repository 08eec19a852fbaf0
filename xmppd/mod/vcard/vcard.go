// Package vcard is XEP-0054 vcard-temp: each member's own card (name,
// avatar), readable by others.
package vcard

import (
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
		return nil, kv.Put(store.Key(st.To.Localpart(), ""), card)
	})
	srv.OnAccountDeleted(func(user string) { kv.DeleteUser(user) })
}
