// Package ping answers XEP-0199 pings to the server and to accounts.
package ping

import (
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "urn:xmpp:ping"

// Register adds ping.
func Register(srv *server.Server) {
	pong := func(*server.Stanza) (*stream.Element, error) { return nil, nil }
	srv.AddFeature(server.ToServer, ns)
	srv.HandleIQ(server.ToServer, "get", ns, "ping", pong)
	srv.HandleIQ(server.ToAccount, "get", ns, "ping", pong)
}
