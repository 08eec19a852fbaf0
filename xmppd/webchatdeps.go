package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/muc"
	"github.com/hearthchat/hearth/xmppd/mod/upload"
)

// chatRooms are the rooms the browser chat joins on login (Converse's
// auto_join_rooms): the club's default room, once group chat runs. Asked
// per page load. This does not wait for a Bookmarks 2 autojoin bookmark
// (which Converse would also follow): a member made on the invite page
// is in the club's room from the first page of the chat, and a room
// Converse already joined is not joined twice.
func (d *Daemon) chatRooms() []string {
	if svc := muc.Of(d.Server); svc != nil {
		return []string{svc.RoomJID(muc.DefaultRoom)}
	}
	return nil
}

// chatUpload is where shared files live (the CSP of /chat/ names that
// origin); "" when the upload service is not running.
func (d *Daemon) chatUpload() string {
	if upload.Of(d.Server) == nil {
		return ""
	}
	return d.uploadBase()
}
