package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/mod/muc"
	"github.com/hearthchat/hearth/xmppd/server"
)

// A circle of the admin pages has its group chat: a members-only room on
// groups.<domain> (muc.CircleRoom) whose members are the circle's. The
// circles' own bucket stays the record; these keep the room in step and
// are idempotent, so Add also makes a room a circle from before group chat
// existed lacks.

func circleRoomAdd(srv *server.Server, circle, user string) error {
	svc := muc.Of(srv)
	if svc == nil {
		return nil
	}
	room := muc.CircleRoom(circle)
	if err := svc.EnsureRoom(room, circle, false); err != nil {
		return err
	}
	if user == "" {
		return nil
	}
	return svc.SetMember(room, user, true)
}

func circleRoomLeave(srv *server.Server, circle, user string) error {
	if svc := muc.Of(srv); svc != nil {
		return svc.SetMember(muc.CircleRoom(circle), user, false)
	}
	return nil
}

func circleRoomDelete(srv *server.Server, circle string) error {
	if svc := muc.Of(srv); svc != nil {
		return svc.DestroyRoom(muc.CircleRoom(circle), "the circle was deleted")
	}
	return nil
}
