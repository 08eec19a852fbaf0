package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/blocking"
	"github.com/hearthchat/hearth/xmppd/mod/carbons"
)

// Many devices per member: XEP-0280 carbons (every device sees both
// sides of a conversation) and XEP-0191 blocking (what a member blocked
// reaches none of them).
func init() {
	modules = append(modules, carbons.Register, blocking.Register)
}
