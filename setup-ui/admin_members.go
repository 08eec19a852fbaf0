package setupui

import (
	"errors"
	"html/template"
	"math"
	"net/http"
	"sort"
	"time"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// The members page: who is in the chat, when they were last there, and
// what the admin can do about each: a password-reset link, the role
// (admin / member / limited), removal with a grace period and undo.

type memberRow struct {
	Member
	Seen    string // "online now", "3 days ago", "never"
	DaysOut int    // whole days left before a removal is final
	Self    bool
}

type membersData struct {
	Nav     template.HTML
	Rows    []memberRow
	Done    string
	Reset   *Invite // a reset link just made
	ResetQR template.HTML
	For     string // whose reset link
}

// memberDone are the messages a change leaves on the page (?done=).
var memberDone = map[string]string{
	"role":   "The change is saved.",
	"remove": "The member can no longer log in. Their account is deleted for good in 7 days unless you undo it below.",
	"undo":   "The removal is undone: the member can log in again.",
}

func (u *UI) adminMembers() Members { return u.d.Admin.Members }

func (u *UI) membersPage(w http.ResponseWriter, r *http.Request) {
	u.renderMembers(w, r, http.StatusOK, nil, "")
}

func (u *UI) renderMembers(w http.ResponseWriter, r *http.Request, code int, reset *Invite, resetFor string) {
	m := u.adminMembers()
	if m == nil {
		adminUnavailable(w, r)
		return
	}
	list, err := m.List()
	if err != nil {
		u.d.Log.Error("admin: members", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not read its member list. Please try again in a minute.")
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i].User < list[j].User })
	now := time.Now()
	d := membersData{Nav: adminNav("/admin/members"), Done: memberDone[r.URL.Query().Get("done")], Reset: reset, For: resetFor}
	for _, x := range list {
		row := memberRow{Member: x, Seen: ago(now, x.LastSeen), Self: x.User == self(r)}
		if x.Online {
			row.Seen = "online now"
		}
		if x.Removing {
			// Rounded: "7 days" just after the removal (the box credits
			// a little more than 7 days; xmppd/removals.go), "less than a
			// day" at the end.
			row.DaysOut = max(int(math.Round(x.DeleteAt.Sub(now).Hours()/24)), 0)
		}
		d.Rows = append(d.Rows, row)
	}
	if reset != nil {
		d.ResetQR, _ = QRSVG(reset.URI, "QR code of the password link")
	}
	u.tpl.Render(w, r, code, "admin-members", d)
}

// memberTarget is the form's user, refused when it is the admin's own
// account: an admin cannot lock themselves out (and so the last admin
// always stays).
func (u *UI) memberTarget(w http.ResponseWriter, r *http.Request) (string, bool) {
	if u.adminMembers() == nil {
		adminUnavailable(w, r)
		return "", false
	}
	user := r.PostForm.Get("user")
	if user == "" {
		page.Error(w, r, http.StatusBadRequest, "No member was chosen. Nothing was changed.")
		return "", false
	}
	if user == self(r) {
		page.Error(w, r, http.StatusConflict, "You cannot change or remove your own account here. Ask another admin to do it.")
		return "", false
	}
	return user, true
}

func (u *UI) memberFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, ErrNoMember) {
		page.Error(w, r, http.StatusNotFound, "There is no such member (perhaps someone else removed them). Nothing was changed.")
		return
	}
	u.d.Log.Error("admin: "+what, "err", err)
	page.Error(w, r, http.StatusInternalServerError, "The box could not make that change. Nothing was changed; please try again.")
}

func (u *UI) memberRole(w http.ResponseWriter, r *http.Request) {
	user, ok := u.memberTarget(w, r)
	if !ok {
		return
	}
	role := Role(r.PostForm.Get("role"))
	switch role {
	case RoleAdmin, RoleMember, RoleLimited:
	default:
		page.Error(w, r, http.StatusBadRequest, "Please choose what the member may do. Nothing was changed.")
		return
	}
	if err := u.adminMembers().SetRole(user, role); err != nil {
		u.memberFailed(w, r, "role", err)
		return
	}
	// Their open admin pages must not keep rights they lost.
	u.sess.EndUser(user)
	back(w, r, "/admin/members", "role")
}

func (u *UI) memberRemove(w http.ResponseWriter, r *http.Request) {
	user, ok := u.memberTarget(w, r)
	if !ok {
		return
	}
	if err := u.adminMembers().Remove(user); err != nil {
		u.memberFailed(w, r, "remove", err)
		return
	}
	u.sess.EndUser(user)
	back(w, r, "/admin/members", "remove")
}

func (u *UI) memberUndo(w http.ResponseWriter, r *http.Request) {
	user, ok := u.memberTarget(w, r)
	if !ok {
		return
	}
	if err := u.adminMembers().Undo(user); err != nil {
		u.memberFailed(w, r, "undo", err)
		return
	}
	back(w, r, "/admin/members", "undo")
}

func (u *UI) memberReset(w http.ResponseWriter, r *http.Request) {
	user, ok := u.memberTarget(w, r)
	if !ok {
		return
	}
	// A reset link is an invite of its own kind (xmppd/mod/invites):
	// one use, a day.
	inv, err := u.d.Invites.Create(InviteOptions{Inviter: self(r), ResetFor: user, TTL: 24 * time.Hour, Uses: 1})
	if err != nil {
		u.memberFailed(w, r, "reset link", err)
		return
	}
	u.renderMembers(w, r, http.StatusCreated, &inv, user)
}
