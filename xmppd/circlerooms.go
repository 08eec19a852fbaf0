package xmppd

import (
	"strings"
	"sync"

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

// defaultRoomTitle is the bookmark's name of the club's default room
// (muc.RegisterWith makes the room with the same title).
const defaultRoomTitle = "Everyone"

// defaultRoomBookmarks puts the club's default room (muc.DefaultRoom,
// where every account is a member) into each member's group chat
// bookmarks with autojoin, so Conversations, Monal, Dino and the browser
// chat join it at login without being told the address: for an account
// made by an invite, the wizard or the admin tools as it is registered,
// and for every other account (made before this existed) by
// offerDefaultRoomToAll once the listeners are open. The PEP module makes
// each offer once (server.OfferBookmark): a member who removes the
// bookmark keeps it removed. It runs from the modules list after muc and
// pep (mods_pep.go; files' init functions run in name order, mods_muc.go
// first).
func defaultRoomBookmarks(srv *server.Server) {
	server.AccountRegistered.On(srv, func(r server.Registration) { offerDefaultRoom(srv, r.User) })
}

// offerDefaultRoomToAll makes the offer to every account, in the
// background: the first start after an upgrade (or the benchmark's fresh
// 5,000 accounts) spent 1.3–2.8 s on it before the listeners opened. A
// member who logs in meanwhile gets the bookmark as a PEP notification.
// Shutdown waits for it (d.wg) before the store closes.
func (d *Daemon) offerDefaultRoomToAll() {
	srv := d.Server
	users, err := srv.Store.Users()
	if err != nil {
		srv.Log.Error("default room bookmarks: list accounts", "err", err)
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		// Offers run side by side so that their writes share commits:
		// one at a time took 5.9 s for 500 accounts (two commits each).
		work := make(chan string)
		var wg sync.WaitGroup
		for range min(len(users), offerWorkers) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for u := range work {
					offerDefaultRoom(srv, u)
				}
			}()
		}
		for _, u := range users {
			work <- u
		}
		close(work)
		wg.Wait()
	}()
}

// offerWorkers bounds the offers made at once at start.
const offerWorkers = 32

func offerDefaultRoom(srv *server.Server, user string) {
	svc := muc.Of(srv)
	if svc == nil || strings.HasPrefix(user, "_") { // "_" names are the box's own (_health)
		return
	}
	if _, ok := svc.Affiliation(muc.DefaultRoom, user+"@"+srv.Domain); !ok {
		return // the service runs without the default room (muc.Options.NoDefaultRoom)
	}
	server.OfferBookmark.Fire(srv, server.Bookmark{User: user, Room: svc.RoomJID(muc.DefaultRoom),
		Name: defaultRoomTitle, Autojoin: true, Nick: user})
}
