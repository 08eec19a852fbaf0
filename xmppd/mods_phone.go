package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/csi"
)

// Phones that sleep: XEP-0352 client state indication (hold back presence
// churn and chat states while the app is in the background).
func init() {
	modules = append(modules, csi.Register)
}
