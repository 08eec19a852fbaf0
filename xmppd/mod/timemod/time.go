// Package timemod answers XEP-0202 entity time queries to the server.
package timemod

import (
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "urn:xmpp:time"

// Register adds urn:xmpp:time.
func Register(srv *server.Server) {
	srv.AddFeature(server.ToServer, ns)
	srv.HandleIQ(server.ToServer, "get", ns, "time", func(*server.Stanza) (*stream.Element, error) {
		now := time.Now()
		return stream.New(ns, "time").Add(
			stream.New(ns, "tzo").AddText(now.Format("-07:00")),
			stream.New(ns, "utc").AddText(now.UTC().Format("2006-01-02T15:04:05.000Z"))), nil
	})
}
