package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/csi"
	"github.com/hearthchat/hearth/xmppd/mod/push"
)

// Phones that sleep: XEP-0352 client state indication (hold back presence
// churn and chat states while the app is in the background) and XEP-0357
// push notifications (wake the app through its app server when a message
// arrives for a hibernating or gone stream).
func init() {
	modules = append(modules, csi.Register, push.Register)
}
