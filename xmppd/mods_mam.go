package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/mam"
)

// The account message archive: XEP-0313 mam:2 with XEP-0359 stanza ids.
// Every message to a local account is committed to it before the
// sender's acknowledgement covers the message (mod/mam's package doc).
func init() {
	modules = append(modules, mam.Register)
}
