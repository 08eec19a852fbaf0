package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/mod/offline"
	"github.com/hearthchat/hearth/xmppd/mod/presence"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/server"
)

// RFC 6121: rosters, presence and subscriptions, offline messages.
func init() {
	modules = append(modules, roster.Register, presence.Register, offline.Register)
	// An invite is a friendship offer: the member and the inviter see each
	// other from the first login on (DESIGN.md, "An invite").
	invites.Registered = append(invites.Registered, func(srv *server.Server, user string, inv *invites.Invite) {
		if inv.Inviter == "" || inv.Inviter == user || !srv.AccountExists(inv.Inviter) {
			return
		}
		if err := roster.Befriend(srv, user, inv.Inviter); err != nil {
			srv.Log.Error("invite: roster pre-subscription", "user", user, "inviter", inv.Inviter, "err", err)
		}
	})
}
