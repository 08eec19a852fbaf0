package xmppd

import "github.com/hearthchat/hearth/xmppd/mod/moved"

// XEP-0283: a contact who moved to a new address is switched over in the
// member's roster by the server once the old account's statement checks
// (mod/moved's package doc).
func init() {
	modules = append(modules, moved.Register)
}
