package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/server"
)

// modules are the feature modules' Register functions. Each file
// mods_*.go appends its group in an init function, so adding a XEP means
// adding a package under mod/ and one line in one of those files.
var modules []func(*server.Server)

func registerModules(srv *server.Server) {
	for _, register := range modules {
		register(srv)
	}
}
