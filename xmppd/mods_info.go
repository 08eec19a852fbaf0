package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/disco"
	"github.com/hearthchat/hearth/xmppd/mod/ping"
	"github.com/hearthchat/hearth/xmppd/mod/private"
	"github.com/hearthchat/hearth/xmppd/mod/timemod"
	"github.com/hearthchat/hearth/xmppd/mod/vcard"
	"github.com/hearthchat/hearth/xmppd/mod/version"
)

func init() {
	modules = append(modules, disco.Register, ping.Register, version.Register, timemod.Register, vcard.Register, private.Register)
}
