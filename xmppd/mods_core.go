package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/adhoc"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/mod/smacks"
)

func init() {
	modules = append(modules, invites.Register, adhoc.Register, smacks.Register)
}
