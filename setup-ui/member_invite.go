package setupui

// /invite: any member the admin allows (config site.members_invite; never
// a limited account) makes an invitation for a friend or a group. Admins
// also switch that permission here. The admin pages have their own, fuller
// invitation page (admin_invites.go: roles, revoking).

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// groupUses is how many people may use a group link made here.
const groupUses = 50

type memberInviteData struct {
	Invite        *Invite
	Landing       string // the /i/ page of the invite
	Uses          int    // how many may use it
	QR            template.HTML
	Admin         bool
	MembersInvite bool
	Saved         bool
}

// LandingURL is the web page of an invitation token as the visitor's own
// browser reaches this box (for links and QR codes on any page).
func LandingURL(r *http.Request, token string) string {
	return pageURL(r, "/i/"+url.PathEscape(token))
}

func (u *UI) membersInvite() bool {
	c, err := u.d.Config.Load()
	return err == nil && c.Site.MembersInvite
}

func (u *UI) mayInvite(w http.ResponseWriter, r *http.Request) bool {
	if u.d.Invites.MayInvite(page.SessionOf(r).User) {
		return true
	}
	page.Error(w, r, http.StatusForbidden, "In this chat only the admins invite people. Ask one of them to invite your friend.")
	return false
}

func (u *UI) memberInviteForm(w http.ResponseWriter, r *http.Request) {
	if !u.mayInvite(w, r) {
		return
	}
	x := page.SessionOf(r)
	u.tpl.Render(w, r, http.StatusOK, "invite-create", memberInviteData{
		Admin: x.Admin, MembersInvite: u.membersInvite(), Saved: r.URL.Query().Get("saved") == "1",
	})
}

func (u *UI) memberInviteSubmit(w http.ResponseWriter, r *http.Request) {
	if !u.mayInvite(w, r) {
		return
	}
	f := r.PostForm
	ttl, ok := validity[f.Get("valid")]
	note := strings.TrimSpace(f.Get("note"))
	if !ok || utf8.RuneCountInString(note) > 200 {
		page.Error(w, r, http.StatusBadRequest, "Please choose how long the invitation stays valid (and keep the note short). Nothing was made.")
		return
	}
	x := page.SessionOf(r)
	o := InviteOptions{Inviter: x.User, TTL: ttl, Uses: 1, Role: "member", Note: note}
	if f.Get("who") == "group" {
		o.Uses = groupUses
	}
	inv, err := u.d.Invites.Create(o)
	switch {
	case errors.Is(err, ErrTooManyInvites):
		page.Error(w, r, http.StatusConflict, "You have many open invitations already. Wait until some are used or run out.")
		return
	case err != nil:
		u.d.Log.Error("invite", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not make the invitation. Please try again.")
		return
	}
	d := memberInviteData{Invite: &inv, Landing: LandingURL(r, inv.Token), Uses: o.Uses, Admin: x.Admin, MembersInvite: u.membersInvite()}
	if d.QR, err = QRSVG(d.Landing, "QR code of the invitation"); err != nil {
		u.d.Log.Error("invite QR", "err", err)
	}
	u.tpl.Render(w, r, http.StatusCreated, "invite-create", d)
}

// membersMayInvite is the admin's switch.
func (u *UI) membersMayInvite(w http.ResponseWriter, r *http.Request) {
	on := r.PostForm.Get("members") == "yes"
	if err := u.d.Config.Update(func(c *config.Config) error { c.Site.MembersInvite = on; return nil }); err != nil {
		u.d.Log.Error("invite: members may invite", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not save the setting. Please try again.")
		return
	}
	http.Redirect(w, r, "/invite?saved=1", http.StatusSeeOther)
}
