package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/extdisco"
)

// Calls and file transfer through NAT: XEP-0215 external service
// discovery hands members the box's STUN/TURN server (turndeps.go) with a
// credential.
func init() {
	modules = append(modules, extdisco.Register)
}
