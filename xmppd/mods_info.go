package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/contact"
	"github.com/hearthchat/hearth/xmppd/mod/disco"
	"github.com/hearthchat/hearth/xmppd/mod/last"
	"github.com/hearthchat/hearth/xmppd/mod/ping"
	"github.com/hearthchat/hearth/xmppd/mod/private"
	"github.com/hearthchat/hearth/xmppd/mod/timemod"
	"github.com/hearthchat/hearth/xmppd/mod/vcard"
	"github.com/hearthchat/hearth/xmppd/mod/version"
)

// Service discovery and the small information modules: XEP-0030/0115
// disco and caps, 0199 ping, 0092 version, 0202 time, 0054 vcard-temp,
// 0049 private storage, 0157 contact addresses, 0012 last activity.
func init() {
	modules = append(modules, disco.Register, ping.Register, version.Register, timemod.Register,
		vcard.Register, private.Register, contact.Register, last.Register)
}
