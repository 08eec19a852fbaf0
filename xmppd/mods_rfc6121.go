package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/offline"
	"github.com/hearthchat/hearth/xmppd/mod/presence"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
)

// RFC 6121: rosters, presence and subscriptions, offline messages. The
// roster also answers the invites module's AccountRegistered event with
// the pre-subscription of member and inviter (DESIGN.md, "An invite").
func init() {
	modules = append(modules, roster.Register, presence.Register, offline.Register)
}
