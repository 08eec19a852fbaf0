package xmppd

import "github.com/hearthchat/hearth/xmppd/mod/upload"

// chatUpload is where shared files live (the CSP of /chat/ names that
// origin); "" when the upload service is not running.
//
// The chat is not given rooms to join (webchat.Options.Rooms): the club's
// default room reaches Converse as a Bookmarks 2 autojoin bookmark
// (circlerooms.go), which a member can remove for good; Converse's
// auto_join_rooms would join it again at every login.
func (d *Daemon) chatUpload() string {
	if upload.Of(d.Server) == nil {
		return ""
	}
	return d.uploadBase()
}
