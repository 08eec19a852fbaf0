package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/pep"
)

// Personal eventing (XEP-0163) on every account: OMEMO keys, avatars,
// nicknames, bookmarks and the vCard4 (XEP-0292) live in PEP nodes;
// every member's bookmarks hold the club's default room (circlerooms.go).
func init() {
	modules = append(modules, pep.Register, defaultRoomBookmarks)
}
