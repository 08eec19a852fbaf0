package invites_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestValidityBounds(t *testing.T) {
	st := openStore(t)
	for _, c := range []struct {
		ttl time.Duration
		ok  bool
	}{
		{0, true}, {time.Hour, true}, {28 * 24 * time.Hour, true},
		{59 * time.Minute, false}, {28*24*time.Hour + time.Second, false}, {-time.Hour, false},
	} {
		inv, err := invites.Create(st, invites.Options{TTL: c.ttl})
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, invites.ErrBadOptions)) {
			t.Errorf("TTL %v: err %v, want ok=%v", c.ttl, err, c.ok)
			continue
		}
		if c.ttl == 0 && err == nil {
			if d := time.Until(inv.Expires); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour {
				t.Errorf("default validity: %v, want 1 week", d)
			}
		}
	}
}

func TestGroupUsesAndRevoke(t *testing.T) {
	st := openStore(t)
	if _, err := invites.Create(st, invites.Options{Uses: invites.MaxGroupUses + 1}); !errors.Is(err, invites.ErrBadOptions) {
		t.Fatalf("more than %d uses: %v", invites.MaxGroupUses, err)
	}
	g, err := invites.Create(st, invites.Options{Uses: 3, Note: "rowing club"})
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range []string{"ann", "ben", "cat"} {
		inv, err := invites.Redeem(st, g.Token, u, "password-"+u)
		if err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
		if inv.Used() != i+1 || !inv.Group() {
			t.Fatalf("after use %d: used %d group %v", i+1, inv.Used(), inv.Group())
		}
		if i < 2 {
			got, err := invites.Get(st, g.Token)
			if err != nil || got.Used() != i+1 || got.Note != "rowing club" {
				t.Fatalf("stored after use %d: %+v %v", i+1, got, err)
			}
		}
	}
	if _, err := invites.Redeem(st, g.Token, "dan", "password-dan"); !errors.Is(err, invites.ErrInvalid) {
		t.Fatalf("fourth use of a 3-use invite: %v", err)
	}
	r, _ := invites.Create(st, invites.Options{Uses: 5})
	if err := invites.Revoke(st, r.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := invites.Get(st, r.Token); !errors.Is(err, invites.ErrInvalid) {
		t.Fatalf("revoked invite still valid: %v", err)
	}
	if _, err := invites.Redeem(st, r.Token, "eve", "password-eve"); !errors.Is(err, invites.ErrInvalid) {
		t.Fatalf("revoked invite redeemed: %v", err)
	}
	if err := invites.Revoke(st, r.Token); !errors.Is(err, invites.ErrInvalid) {
		t.Fatalf("second revoke: %v", err)
	}
}

func TestRoles(t *testing.T) {
	st := openStore(t)
	if _, err := invites.Create(st, invites.Options{Role: invites.RoleAdmin, Uses: 2}); !errors.Is(err, invites.ErrBadOptions) {
		t.Fatalf("group admin invite: %v", err)
	}
	if _, err := invites.Create(st, invites.Options{Role: "owner"}); !errors.Is(err, invites.ErrBadOptions) {
		t.Fatalf("unknown role: %v", err)
	}
	for _, c := range []struct{ user, role string }{{"ada", invites.RoleAdmin}, {"max", invites.RoleMember}, {"lim", invites.RoleLimited}} {
		inv, err := invites.Create(st, invites.Options{Role: c.role})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := invites.Redeem(st, inv.Token, c.user, "password-"+c.user); err != nil {
			t.Fatal(err)
		}
		if got := invites.Role(st, c.user); got != c.role {
			t.Errorf("%s: role %q, want %q", c.user, got, c.role)
		}
	}
	for _, c := range []struct {
		user       string
		membersMay bool
		want       bool
	}{
		{"ada", false, true}, {"max", false, false}, {"max", true, true},
		{"lim", false, false}, {"lim", true, false}, {"nobody", true, false},
	} {
		if got := invites.MayInvite(st, c.user, c.membersMay); got != c.want {
			t.Errorf("MayInvite(%s, members may %v) = %v, want %v", c.user, c.membersMay, got, c.want)
		}
	}
}

func TestLivePerCreatorCap(t *testing.T) {
	st := openStore(t)
	var first string
	for i := 0; i < invites.MaxLivePerCreator; i++ {
		inv, err := invites.Create(st, invites.Options{Inviter: "ann"})
		if err != nil {
			t.Fatalf("invite %d: %v", i+1, err)
		}
		if i == 0 {
			first = inv.Token
		}
	}
	if _, err := invites.Create(st, invites.Options{Inviter: "ann"}); !errors.Is(err, invites.ErrTooMany) {
		t.Fatalf("invite %d: %v, want ErrTooMany", invites.MaxLivePerCreator+1, err)
	}
	if _, err := invites.Create(st, invites.Options{Inviter: "ben"}); err != nil {
		t.Fatalf("another creator: %v", err)
	}
	// An expired invite no longer counts (and is swept).
	if err := invites.Expire(st, first); err != nil {
		t.Fatal(err)
	}
	if _, err := invites.Create(st, invites.Options{Inviter: "ann"}); err != nil {
		t.Fatalf("after one expired: %v", err)
	}
	list, _ := invites.List(st)
	if len(list) != invites.MaxLivePerCreator+1 {
		t.Fatalf("%d live invites listed, want %d", len(list), invites.MaxLivePerCreator+1)
	}
}

func TestResetLink(t *testing.T) {
	st := openStore(t)
	if err := st.CreateAccount("ann", "old-password", false); err != nil {
		t.Fatal(err)
	}
	if _, err := invites.Create(st, invites.Options{Kind: invites.KindReset}); !errors.Is(err, invites.ErrBadOptions) {
		t.Fatalf("reset link without an account: %v", err)
	}
	r, err := invites.Create(st, invites.Options{Kind: invites.KindReset, User: "ann", TTL: invites.MinTTL})
	if err != nil {
		t.Fatal(err)
	}
	// A reset link never registers an account, and an invite never resets.
	if _, err := invites.Redeem(st, r.Token, "mallory", "mallory-password"); !errors.Is(err, invites.ErrInvalid) {
		t.Fatalf("reset link used as an invite: %v", err)
	}
	inv, _ := invites.Create(st, invites.Options{})
	if _, err := invites.ResetPassword(st, inv.Token, "new-password"); !errors.Is(err, invites.ErrInvalid) {
		t.Fatalf("invite used as a reset link: %v", err)
	}
	before, _ := st.Account("ann")
	user, err := invites.ResetPassword(st, r.Token, "new-password")
	if err != nil || user != "ann" {
		t.Fatalf("reset: %q %v", user, err)
	}
	after, _ := st.Account("ann")
	if string(before.SHA256.StoredKey) == string(after.SHA256.StoredKey) {
		t.Fatal("password unchanged")
	}
	if _, err := invites.ResetPassword(st, r.Token, "third-password"); !errors.Is(err, invites.ErrInvalid) {
		t.Fatalf("second use of a reset link: %v", err)
	}
}
