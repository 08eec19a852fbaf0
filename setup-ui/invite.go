package setupui

import (
	"html/template"
	"net/http"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// Step 4: invite the first people; then the done screen.

type inviteData struct {
	Invite  *Invite
	QR      template.HTML
	Group   bool
	Admin   bool
	Restart bool // the saved domain differs from the running one
	Domain  string
	Step    int
}

// validity choices, as offered on the page.
var validity = map[string]time.Duration{
	"1h": time.Hour, "1d": 24 * time.Hour, "1w": 7 * 24 * time.Hour, "4w": 28 * 24 * time.Hour,
}

func (u *UI) restartPending() (bool, string) {
	c, err := u.d.Config.Load()
	if err != nil {
		return false, ""
	}
	return c.Domain != u.d.Domain(), c.Domain
}

func (u *UI) inviteForm(w http.ResponseWriter, r *http.Request) {
	d := inviteData{Step: 4, Admin: r.URL.Query().Get("admin") == "1"}
	d.Restart, d.Domain = u.restartPending()
	u.tpl.Render(w, r, http.StatusOK, "setup-invite", d)
}

func (u *UI) inviteSubmit(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	if f.Get("skip") != "" {
		u.markDone(w, r)
		http.Redirect(w, r, "/setup/done", http.StatusSeeOther)
		return
	}
	ttl, ok := validity[f.Get("valid")]
	if !ok {
		page.Error(w, r, http.StatusBadRequest, "Please choose how long the invitation stays valid.")
		return
	}
	d := inviteData{Step: 4, Group: f.Get("who") == "group", Admin: f.Get("admin") == "yes"}
	o := InviteOptions{Inviter: page.SessionOf(r).User, TTL: ttl, Uses: 1, Admin: d.Admin}
	if d.Group && !d.Admin {
		// An admin invite is for one person, whatever was ticked: a
		// forwarded group link must not make fifty admins.
		o.Uses = 50
	}
	d.Group = o.Uses > 1
	inv, err := u.d.Invites.Create(o)
	if err != nil {
		u.d.Log.Error("setup: invite", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not make the invitation. Please try again.")
		return
	}
	d.Invite = &inv
	d.QR, err = QRSVG(inv.URI, "QR code of the invitation")
	if err != nil {
		u.d.Log.Error("setup: invite QR", "err", err)
	}
	d.Restart, d.Domain = u.restartPending()
	u.markDone(w, r)
	u.tpl.Render(w, r, http.StatusCreated, "setup-invite", d)
}

func (u *UI) markDone(w http.ResponseWriter, r *http.Request) {
	if err := u.d.Config.Update(func(c *config.Config) error { c.Site.Done = true; return nil }); err != nil {
		u.d.Log.Error("setup: done", "err", err)
	}
}

type doneData struct {
	ChatName, User, Domain string
	Restart                bool
}

func (u *UI) done(w http.ResponseWriter, r *http.Request) {
	d := doneData{ChatName: u.chatName(), User: page.SessionOf(r).User}
	d.Restart, d.Domain = u.restartPending()
	u.tpl.Render(w, r, http.StatusOK, "setup-done", d)
}
