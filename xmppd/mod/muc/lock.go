package muc

import (
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Room locking (XEP-0045 §10.1): a room a member makes by joining it is
// locked — anyone else joining gets item-not-found, as if there were no
// room yet — until its owner submits the configuration form, or accepts
// the defaults with the instant-room request (an empty
// <x xmlns='jabber:x:data' type='submit'/>). Cancelling that first form
// destroys the room (§10.1.3). The owner's self-presence carries 201,
// which is what tells a client to do one or the other.
//
// What the others do, and what we follow: Prosody 0.12 locks by default
// (muc_room_locking = true, Debian's package included) and unlocks a room
// nobody configured after muc_room_lock_timeout (5 minutes); joins
// without the MUC <x/> (the old groupchat protocol, whose clients know
// nothing of 201) are not locked (read in Debian's 0.12.3 lock.lib.lua).
// ejabberd 23.01 does not lock (its just_created only decides the 201;
// read in Debian's mod_muc_room). Converse 14 sends the instant-room
// submit on 201 by default (muc_instant_rooms, onOwnPresence in its
// muc.js; the web chat does not change it); Conversations and Gajim are
// said to configure the rooms they make, not checked here. slixmpp's
// xep_0045 does neither by itself, so a bot that only joins
// would make a room nobody else could enter — the timeout is what keeps
// such a room usable. Hearth follows Prosody (the clients people use
// handle 201, so locking costs them nothing): locked, opened after
// Options.LockTimeout, old-protocol joins not locked. Unlike Prosody,
// which answers a cancel and keeps the room, a cancelled first form
// destroys the room as §10.1.3 says. Rooms the server makes (the club's
// everyone@ room, circle rooms) are never locked.

// DefaultLockTimeout is how long a room nobody configured stays locked
// (Prosody's muc_room_lock_timeout).
const DefaultLockTimeout = 5 * time.Minute

// lockUntil is the LockedUntil of a room st's join makes: 0 (unlocked)
// for an old-protocol join or with locking off.
func (m *Service) lockUntil(st *server.Stanza) int64 {
	if m.o.LockTimeout <= 0 || st.El.Child(NS, "x") == nil {
		return 0
	}
	return m.o.Now().Add(m.o.LockTimeout).Unix()
}

// locked: is r still waiting for its owner's configuration at now?
func (r *room) locked(now time.Time) bool {
	return r.st.LockedUntil != 0 && now.Unix() < r.st.LockedUntil
}

// lockedFor: is r locked for bare (everyone but its owners)?
func (r *room) lockedFor(bare string, now time.Time) bool {
	return r.locked(now) && r.aff(bare) != "owner"
}

// cancelCreation is the owner cancelling the first configuration form
// of a locked room: the room goes (§10.1.3). A cancel at any other time
// changes nothing.
func (m *Service) cancelCreation(r *room) error {
	if !r.locked(m.o.Now()) {
		return nil
	}
	d := stream.New(NSOwner, "destroy")
	d.Add(stream.New(NSOwner, "reason").AddText("the owner cancelled the room's creation"))
	return m.destroy(r, d)
}
