package setupui

import (
	"net/http"
	"strings"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

type loginData struct {
	User, Next, Error string
}

// safeNext keeps a login's "next" on this site: a path, never "//host".
func safeNext(s string) string {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") {
		return "/"
	}
	return s
}

func (u *UI) loginForm(w http.ResponseWriter, r *http.Request) {
	u.tpl.Render(w, r, http.StatusOK, "login", loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

func (u *UI) loginSubmit(w http.ResponseWriter, r *http.Request) {
	data := loginData{User: strings.TrimSpace(r.PostForm.Get("user")), Next: safeNext(r.PostForm.Get("next"))}
	if !u.loginIP.Allow(page.LimitKey(page.ClientAddr(r))) {
		page.Error(w, r, http.StatusTooManyRequests, "Too many tries from here. Wait a quarter of an hour and try again.")
		return
	}
	user, _, _ := strings.Cut(data.User, "@") // people type their whole address
	ok, isAdmin := u.d.Accounts.Check(user, r.PostForm.Get("password"))
	if !ok {
		data.Error = "That user name and password do not match."
		u.tpl.Render(w, r, http.StatusUnauthorized, "login", data)
		return
	}
	u.sess.Change(w, r, page.SessionOf(r), func(x *page.Session) { x.User, x.Admin = user, isAdmin })
	http.Redirect(w, r, data.Next, http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	u.sess.End(w, r, page.SessionOf(r))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

type homeData struct {
	User  string
	Admin bool
	// Invite: this member may make invitations (/invite, member_invite.go).
	Invite bool
}

func (u *UI) home(w http.ResponseWriter, r *http.Request) {
	x := page.SessionOf(r)
	u.tpl.Render(w, r, http.StatusOK, "home", homeData{User: x.User, Admin: x.Admin,
		Invite: x.User != "" && u.d.Invites.MayInvite(x.User)})
}
