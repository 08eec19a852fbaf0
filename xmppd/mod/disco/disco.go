// Package disco is XEP-0030 service discovery for the server and for
// accounts, and XEP-0115 entity capabilities for the server: it lists what
// the other modules registered (features, identities, XEP-0128 forms) and
// hashes that list into the caps stream feature, so a client that has seen
// this server version before can skip the disco#info round trip at login.
package disco

import (
	"cmp"
	"slices"
	"strings"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Namespaces.
const (
	NSInfo  = "http://jabber.org/protocol/disco#info"
	NSItems = "http://jabber.org/protocol/disco#items"
	NSCaps  = "http://jabber.org/protocol/caps"
)

// CapsNode names the software in the caps element (XEP-0115 §4: a URI
// that identifies the product, not the deployment).
const CapsNode = "https://github.com/hearthchat/hearth"

// Register adds disco#info, disco#items and the caps stream feature.
func Register(srv *server.Server) {
	srv.AddIdentity(server.Identity{Category: "server", Type: "im", Name: "Hearth"})
	for _, t := range []server.Target{server.ToServer, server.ToAccount} {
		srv.AddFeature(t, NSInfo)
		srv.AddFeature(t, NSItems)
	}
	srv.AddFeature(server.ToServer, NSCaps)

	srv.HandleIQ(server.ToServer, "get", NSInfo, "query", func(st *server.Stanza) (*stream.Element, error) {
		node := st.El.FirstChild().Get("node")
		if h := srv.DiscoNode(node); node != "" && h != nil {
			return h(st.From, false, node) // a module's node (XEP-0050 commands)
		}
		// The caps node is "CapsNode#ver" (XEP-0115 §6.2). A client that
		// asks with a ver from before the admin list changed gets today's
		// answer; its hash check fails and it simply does not cache it.
		if node != "" && !strings.HasPrefix(node, CapsNode+"#") {
			return nil, server.ErrItemNotFound
		}
		q := ServerInfo(srv)
		q.Set("node", node)
		return q, nil
	})
	srv.HandleIQ(server.ToAccount, "get", NSInfo, "query", func(st *server.Stanza) (*stream.Element, error) {
		owner := st.To.Localpart()
		if !srv.Contacts().MayViewPresence(owner, st.From) {
			// As for an account that does not exist: strangers learn nothing.
			return nil, server.ErrServiceUnavailable
		}
		if st.El.FirstChild().Get("node") != "" {
			return nil, server.ErrItemNotFound
		}
		q := stream.New(NSInfo, "query")
		q.Add(stream.New(NSInfo, "identity", "category", "account", "type", "registered"))
		for _, id := range srv.AccountIdentities() { // PEP's pubsub/pep (XEP-0163 §8)
			q.Add(stream.New(NSInfo, "identity", "category", id.Category, "type", id.Type))
		}
		addFeatures(q, srv.Features(server.ToAccount))
		q.Add(srv.DiscoExtensions(server.ToAccount, owner)...)
		return q, nil
	})
	srv.HandleIQ(server.ToServer, "get", NSItems, "query", func(st *server.Stanza) (*stream.Element, error) {
		if node := st.El.FirstChild().Get("node"); node != "" {
			if h := srv.DiscoNode(node); h != nil {
				return h(st.From, true, node)
			}
			return nil, server.ErrItemNotFound
		}
		q := stream.New(NSItems, "query")
		// Services list themselves with srv.AddDiscoItem (the upload
		// service, the group-chat host), without importing this package.
		for _, it := range srv.DiscoItems() {
			el := stream.New(NSItems, "item", "jid", it.JID)
			el.Set("name", it.Name)
			q.Add(el)
		}
		return q, nil
	})
	srv.HandleIQ(server.ToAccount, "get", NSItems, "query", func(st *server.Stanza) (*stream.Element, error) {
		if !srv.Contacts().MayViewPresence(st.To.Localpart(), st.From) {
			return nil, server.ErrServiceUnavailable
		}
		if st.El.FirstChild().Get("node") != "" {
			return nil, server.ErrItemNotFound
		}
		// PEP lists the account's nodes the asker may read.
		q := stream.New(NSItems, "query")
		for _, it := range srv.AccountItems(st.To.Localpart(), st.From) {
			el := stream.New(NSItems, "item", "jid", it.JID, "node", it.Node)
			el.Set("name", it.Name)
			q.Add(el)
		}
		return q, nil
	})

	// XEP-0115 §6.3: the server's caps in its stream features.
	srv.AddStreamFeature(func(*session.Session) *stream.Element {
		return stream.New(NSCaps, "c", "hash", "sha-1", "node", CapsNode, "ver", Ver(ServerInfo(srv)))
	})
}

// ServerInfo is the server's disco#info result: its identities, every
// feature the modules registered (sorted, without duplicates) and their
// XEP-0128 extension forms.
func ServerInfo(srv *server.Server) *stream.Element {
	q := stream.New(NSInfo, "query")
	ids := srv.Identities()
	slices.SortFunc(ids, func(a, b server.Identity) int {
		return cmp.Or(cmp.Compare(a.Category, b.Category), cmp.Compare(a.Type, b.Type), cmp.Compare(a.Name, b.Name))
	})
	ids = slices.Compact(ids)
	for _, id := range ids {
		el := stream.New(NSInfo, "identity", "category", id.Category, "type", id.Type)
		el.Set("name", id.Name)
		q.Add(el)
	}
	addFeatures(q, srv.Features(server.ToServer))
	q.Add(srv.DiscoExtensions(server.ToServer, "")...)
	return q
}

func addFeatures(q *stream.Element, f []string) {
	slices.Sort(f)
	for _, v := range slices.Compact(f) {
		q.Add(stream.New(NSInfo, "feature", "var", v))
	}
}
