// Package version answers XEP-0092 software version queries to the server.
package version

import (
	"github.com/hearthchat/hearth/appliance/version"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "jabber:iq:version"

// Register adds jabber:iq:version.
func Register(srv *server.Server) {
	srv.AddFeature(server.ToServer, ns)
	srv.HandleIQ(server.ToServer, "get", ns, "query", func(*server.Stanza) (*stream.Element, error) {
		// The operating system is left out on purpose: it tells an
		// attacker more than it tells a member.
		return stream.New(ns, "query").Add(
			stream.New(ns, "name").AddText("Hearth"),
			stream.New(ns, "version").AddText(version.Version)), nil
	})
}
