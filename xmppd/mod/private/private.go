// Package private is XEP-0049 private XML storage: a client keeps its own
// data (bookmarks, settings) on the server, one element per namespace.
package private

import (
	"strings"

	"github.com/hearthchat/hearth/xmppd/mod/internal/xmlkv"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "jabber:iq:private"

// MaxSize bounds one stored element.
const MaxSize = 64 << 10

// Register adds jabber:iq:private.
func Register(srv *server.Server) {
	kv := xmlkv.New(srv.Store, "private")
	srv.AddFeature(server.ToServer, ns)
	handle := func(st *server.Stanza) (*stream.Element, error) {
		if st.Origin == nil || st.To.Localpart() != st.From.Localpart() {
			return nil, server.ErrForbidden
		}
		q := st.El.FirstChild()
		kids := q.Children()
		if len(kids) != 1 {
			return nil, server.ErrBadRequest
		}
		data := kids[0]
		// XEP-0049 §3: jabber:* namespaces are reserved.
		if data.Space == "" || data.Space == stream.NSClient || strings.HasPrefix(data.Space, "jabber:") {
			return nil, server.ErrNotAcceptable
		}
		key := store.Key(st.To.Localpart(), data.Space, data.Local)
		if st.Type() == "get" {
			el, err := kv.Get(key)
			if err != nil {
				return nil, err
			}
			if el == nil {
				el = data
			}
			return stream.New(ns, "query").Add(el), nil
		}
		if len(data.Append(nil, stream.NSClient)) > MaxSize {
			return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "too large"}
		}
		return nil, kv.Put(key, data)
	}
	srv.HandleIQ(server.ToAccount, "get", ns, "query", handle)
	srv.HandleIQ(server.ToAccount, "set", ns, "query", handle)
	srv.OnAccountDeleted(func(user string) { kv.DeleteUser(user) })
}
