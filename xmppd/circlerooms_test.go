package xmppd

import (
	"context"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/mod/muc"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// TestCircleRooms: a circle made on the admin pages has its members-only
// room; adding and taking out members changes the room's members;
// deleting the circle ends the room.
func TestCircleRooms(t *testing.T) {
	d := startTest(t, state.Dir(t.TempDir()))
	defer d.Shutdown(context.Background())
	for _, u := range []string{"anna", "bob"} {
		d.Store.CreateAccount(u, u+"-password", false)
	}
	c := webCircles{d.Server}
	svc := muc.Of(d.Server)
	room := muc.CircleRoom("Rowers")
	anna := "anna@" + d.Server.Domain
	if err := c.Create("Rowers"); err != nil {
		t.Fatal(err)
	}
	if aff, ok := svc.Affiliation(room, anna); !ok || aff != "none" {
		t.Fatalf("after Create: room %v, anna %q", ok, aff)
	}
	for _, u := range []string{"anna", "bob"} {
		if err := c.Add("Rowers", u); err != nil {
			t.Fatal(err)
		}
	}
	if aff, _ := svc.Affiliation(room, anna); aff != "member" {
		t.Fatalf("after Add: anna %q", aff)
	}
	if err := c.Leave("Rowers", "anna"); err != nil {
		t.Fatal(err)
	}
	if aff, _ := svc.Affiliation(room, anna); aff != "none" {
		t.Fatalf("after Leave: anna %q", aff)
	}
	if aff, _ := svc.Affiliation(room, "bob@"+d.Server.Domain); aff != "member" {
		t.Fatalf("bob lost membership: %q", aff)
	}
	if err := c.Delete("Rowers"); err != nil {
		t.Fatal(err)
	}
	if _, ok := svc.Affiliation(room, anna); ok {
		t.Fatal("the room outlived its circle")
	}
	// Everyone is a member of the club's default room.
	if aff, ok := svc.Affiliation(muc.DefaultRoom, anna); !ok || aff != "member" {
		t.Fatalf("default room: %v %q", ok, aff)
	}
}

// TestDefaultRoomBookmarks: every member finds the club's default room
// in the Bookmarks 2 node with autojoin: an account from before (or made
// by the admin tools) at the next start, a member registered with an
// invite at once; the box's own "_" accounts get none.
func TestDefaultRoomBookmarks(t *testing.T) {
	dir := state.Dir(t.TempDir())
	d := startTest(t, dir)
	for _, u := range []string{"anna", "_box"} {
		if err := d.Store.CreateAccount(u, u+"-password", false); err != nil {
			t.Fatal(err)
		}
	}
	room := "everyone@groups." + d.Server.Domain
	if got := roomBookmark(t, d, "anna"); got != nil {
		t.Fatalf("a bookmark before the restart: %s", got)
	}
	d.Shutdown(context.Background())
	d = startTest(t, dir)
	defer d.Shutdown(context.Background())
	// The pass over existing accounts runs in the background after the
	// listeners open.
	c := roomBookmark(t, d, "anna")
	for deadline := time.Now().Add(10 * time.Second); c == nil && time.Now().Before(deadline); c = roomBookmark(t, d, "anna") {
		time.Sleep(50 * time.Millisecond)
	}
	if c == nil || c.Get("autojoin") != "true" || c.ChildText("urn:xmpp:bookmarks:1", "nick") != "anna" {
		t.Fatalf("anna's bookmark of %s after the restart: %v", room, c)
	}
	if p, err := d.Server.PrivateStorage().Get("_box", "storage:bookmarks", "storage"); err != nil || p != nil {
		t.Fatalf("the box's own account got bookmarks: %v %v", p, err)
	}
	if err := d.Store.CreateAccount("ben", "ben-password", false); err != nil {
		t.Fatal(err)
	}
	server.AccountRegistered.Fire(d.Server, server.Registration{User: "ben", Inviter: "anna"})
	if c := roomBookmark(t, d, "ben"); c == nil || c.Get("autojoin") != "true" || c.Get("name") != defaultRoomTitle {
		t.Fatalf("ben's bookmark of %s: %v", room, c)
	}
	// The setup wizard's first admin gets it at once, not at the next
	// restart.
	if _, err := (webAccounts{d.Store, d.Server}).Create("carla", "carla-password", true); err != nil {
		t.Fatal(err)
	}
	if c := roomBookmark(t, d, "carla"); c == nil || c.Get("autojoin") != "true" {
		t.Fatalf("the wizard's admin's bookmark of %s: %v", room, c)
	}
}

// roomBookmark logs user in and returns its Bookmarks 2 conference of
// the default room, or nil.
func roomBookmark(t *testing.T, d *Daemon, user string) *stream.Element {
	t.Helper()
	c := dial(t, d, user, user+"-password")
	defer c.Close()
	c.Send([]byte("<iq type='get' id='bm'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'/></pubsub></iq>"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		raw, err := c.ReadStanza()
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		el, err := stream.ParseElement(raw)
		if err != nil {
			t.Fatal(err)
		}
		if el.Local != "iq" || el.Get("id") != "bm" {
			continue
		}
		if el.Get("type") != "result" {
			return nil // item-not-found: no bookmarks node
		}
		for _, it := range el.FirstChild().FirstChild().Children() {
			if it.Get("id") == muc.Of(d.Server).RoomJID(muc.DefaultRoom) {
				return it.Child("urn:xmpp:bookmarks:1", "conference")
			}
		}
		return nil
	}
}
