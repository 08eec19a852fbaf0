package xmppd

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	setupui "github.com/hearthchat/hearth/setup-ui"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/server"
)

// TestWebInvites: the pages' invites adapter — bounds and errors as the
// pages know them, web registration making inviter and member contacts
// (the same event as in-band registration), reset links, and who may
// invite following the config switch.
func TestWebInvites(t *testing.T) {
	dir := state.Dir(t.TempDir())
	d := startTest(t, dir)
	defer d.Shutdown(t.Context())
	if err := d.Store.CreateAccount("sue", "sue-password", true); err != nil {
		t.Fatal(err)
	}
	w := webInvites{d}
	if _, err := w.Create(setupui.InviteOptions{TTL: 30 * time.Minute}); !errors.Is(err, setupui.ErrInviteOptions) {
		t.Fatalf("30-minute invite: %v", err)
	}
	inv, err := w.Create(setupui.InviteOptions{Inviter: "sue", Uses: 3, Note: "club"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w.Lookup(inv.Token); err != nil || got.MaxUses != 3 || got.Uses != 3 || got.Inviter != "sue" || got.Role != "member" || got.Note != "club" {
		t.Fatalf("lookup: %+v %v", got, err)
	}
	if u, err := w.Redeem(inv.Token, "Bert", "bert-password"); err != nil || u != "bert" {
		t.Fatalf("redeem: %q %v", u, err)
	}
	it, ok, err := roster.Get(d.Store, "bert", "sue@hearth.localhost")
	if err != nil || !ok || it.Sub != roster.Both {
		t.Fatalf("member's contact with the inviter: %+v %v %v", it, ok, err)
	}
	if _, err := w.Redeem(inv.Token, "bert", "bert-password"); !errors.Is(err, setupui.ErrExists) {
		t.Fatalf("taken name: %v", err)
	}
	if _, err := w.Redeem(inv.Token, "_health2", "some-password"); !errors.Is(err, setupui.ErrBadName) {
		t.Fatalf("box's own name: %v", err)
	}
	if _, err := w.Redeem("nonsense", "carl", "carl-password"); !errors.Is(err, setupui.ErrInvite) {
		t.Fatalf("unknown token: %v", err)
	}
	if err := w.Revoke(inv.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Lookup(inv.Token); !errors.Is(err, setupui.ErrInvite) {
		t.Fatalf("revoked: %v", err)
	}

	if _, err := w.Create(setupui.InviteOptions{ResetFor: "nobody"}); !errors.Is(err, setupui.ErrBadName) {
		t.Fatalf("reset link for no account: %v", err)
	}
	r, err := w.Create(setupui.InviteOptions{Inviter: "sue", ResetFor: "bert", TTL: 24 * time.Hour})
	if err != nil || r.Reset != "bert" || !strings.HasSuffix(r.URI, "/reset/"+r.Token) {
		t.Fatalf("reset link: %+v %v", r, err)
	}
	if _, err := w.Lookup(r.Token); !errors.Is(err, setupui.ErrInvite) {
		t.Fatalf("reset link as an invite: %v", err)
	}
	if u, err := w.ResetPassword(r.Token, "new-bert-password"); err != nil || u != "bert" {
		t.Fatalf("reset: %q %v", u, err)
	}
	if _, err := w.ResetPassword(r.Token, "again-password"); !errors.Is(err, setupui.ErrInvite) {
		t.Fatalf("second reset: %v", err)
	}

	named, _ := invites.Create(d.Store, invites.Options{User: "gran"})
	if got, err := w.Lookup(named.Token); err != nil || got.User != "gran" {
		t.Fatalf("named invite: %+v %v", got, err)
	}
	lim, _ := w.Create(setupui.InviteOptions{Role: "limited"})
	if _, err := w.Redeem(lim.Token, "lou", "lou-password"); err != nil {
		t.Fatal(err)
	}
	if !w.MayInvite("sue") || w.MayInvite("bert") || w.MayInvite("lou") {
		t.Fatal("before the switch: only the admin may invite")
	}
	c := config.Default()
	c.Site.MembersInvite = true
	if err := config.Save(dir.Config(), c); err != nil {
		t.Fatal(err)
	}
	if !w.MayInvite("bert") || w.MayInvite("lou") {
		t.Fatal("after the switch: members may invite, limited accounts still not")
	}
	if invites.Role(d.Store, "lou") != invites.RoleLimited {
		t.Fatal("limited role not kept")
	}
}

func TestWebBase(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, ""},
		{Options{Web: "127.0.0.1:8080", Dev: true}, "http://127.0.0.1:8080"},
		{Options{Web: ":80", WebTLS: ":443"}, "https://hearth.example"},
		{Options{Web: ":80"}, "http://hearth.example"},
		{Options{Web: ":8080", WebTLS: ":8443", Dev: true}, "http://hearth.example:8080"},
	} {
		d := &Daemon{opts: c.o}
		d.Server = &server.Server{Domain: "hearth.example"}
		if got := d.webBase(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.o, got, c.want)
		}
	}
}
