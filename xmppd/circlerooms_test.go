package xmppd

import (
	"context"
	"testing"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/mod/muc"
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
