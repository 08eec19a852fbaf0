package roster_test

import (
	"slices"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// TestContactsGroups: Contacts.Groups is the groups the owner filed a
// contact under (PEP's roster access model), none for a stranger.
func TestContactsGroups(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := d.Server.Contacts()
	if err := c.Befriend("alice", "bob", "Rowers"); err != nil {
		t.Fatal(err)
	}
	if g, err := c.Groups("alice", "bob@example.test"); err != nil || !slices.Equal(g, []string{"Rowers"}) {
		t.Fatalf("alice's groups for bob: %v %v", g, err)
	}
	if g, err := c.Groups("alice", "carol@example.test"); err != nil || g != nil {
		t.Fatalf("a stranger's groups: %v %v", g, err)
	}
}
