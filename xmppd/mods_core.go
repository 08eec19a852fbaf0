package xmppd

import "github.com/hearthchat/hearth/xmppd/mod/invites"

func init() {
	modules = append(modules, invites.Register)
}
