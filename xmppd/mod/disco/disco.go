// Package disco is XEP-0030 service discovery for the server and for
// accounts: it lists what the other modules registered.
package disco

import (
	"slices"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	nsInfo  = "http://jabber.org/protocol/disco#info"
	nsItems = "http://jabber.org/protocol/disco#items"
)

// Register adds disco#info and disco#items.
func Register(srv *server.Server) {
	srv.AddIdentity(server.Identity{Category: "server", Type: "im", Name: "Hearth"})
	for _, t := range []server.Target{server.ToServer, server.ToAccount} {
		srv.AddFeature(t, nsInfo)
		srv.AddFeature(t, nsItems)
	}
	srv.HandleIQ(server.ToServer, "get", nsInfo, "query", func(st *server.Stanza) (*stream.Element, error) {
		return info(srv, st, server.ToServer), nil
	})
	srv.HandleIQ(server.ToAccount, "get", nsInfo, "query", func(st *server.Stanza) (*stream.Element, error) {
		return info(srv, st, server.ToAccount), nil
	})
	items := func(st *server.Stanza) (*stream.Element, error) {
		q := stream.New(nsItems, "query")
		if n := st.El.FirstChild().Get("node"); n != "" {
			q.Set("node", n)
		}
		return q, nil
	}
	srv.HandleIQ(server.ToServer, "get", nsItems, "query", items)
	srv.HandleIQ(server.ToAccount, "get", nsItems, "query", items)
}

func info(srv *server.Server, st *server.Stanza, t server.Target) *stream.Element {
	q := stream.New(nsInfo, "query")
	if n := st.El.FirstChild().Get("node"); n != "" {
		q.Set("node", n)
	}
	if t == server.ToServer {
		for _, id := range srv.Identities() {
			q.Add(stream.New(nsInfo, "identity", "category", id.Category, "type", id.Type, "name", id.Name))
		}
	} else {
		q.Add(stream.New(nsInfo, "identity", "category", "account", "type", "registered"))
	}
	f := srv.Features(t)
	f = slices.Compact(f)
	for _, v := range f {
		q.Add(stream.New(nsInfo, "feature", "var", v))
	}
	q.Add(srv.DiscoExtensions(t, st.To.Localpart())...)
	return q
}
