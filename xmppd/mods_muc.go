package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/muc"
)

// Group chat: XEP-0045 rooms on groups.<domain> with their archive
// (XEP-0313 on the room), occupant-id and self-ping.
func init() {
	modules = append(modules, muc.Register)
}
