package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/server"
)

// registerModules plugs every feature module into the hub. Adding a XEP
// means adding a package under mod/ and one line here.
func registerModules(srv *server.Server) {
}
