package setupui

import (
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// A member's page: the apps (devices) they log in with, as each named
// itself (xmppd/store/fast.go keeps them from the SASL2 user-agent), and
// "sign out all devices": every saved login key (FAST token) ends and
// every connection closes.

type deviceRow struct {
	Name     string // "Conversations on Pixel 7"
	Used     string // "2 hours ago"
	KeyUntil string // "21 December 2026" ("" none)
}

type memberPageData struct {
	Nav     template.HTML
	User    string
	Self    bool
	Done    string
	Devices []deviceRow
}

// deviceName says in plain words what app on what device this is.
func deviceName(d Device) string {
	switch {
	case d.Software != "" && d.Device != "":
		return d.Software + " on " + d.Device
	case d.Software != "":
		return d.Software
	case d.Device != "":
		return "An app on " + d.Device
	default:
		return "An app that did not give its name"
	}
}

var devicesDone = map[string]string{
	"signout": "All their apps are signed out. Apps that saved the password log in again by themselves: if a phone was lost or taken, also make a password link for the member so they choose a new password.",
}

func memberPath(user string) string { return "/admin/members/" + url.PathEscape(user) }

func (u *UI) memberPage(w http.ResponseWriter, r *http.Request) {
	m, dv := u.adminMembers(), u.d.Admin.Devices
	if m == nil || dv == nil {
		adminUnavailable(w, r)
		return
	}
	user := r.PathValue("user")
	list, err := m.List()
	if err != nil {
		u.d.Log.Error("admin: members", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not read its member list. Please try again in a minute.")
		return
	}
	found := false
	for _, x := range list {
		found = found || x.User == user
	}
	if !found {
		page.Error(w, r, http.StatusNotFound, "There is no such member (perhaps someone else removed them).")
		return
	}
	devs, err := dv.List(user)
	if err != nil {
		u.d.Log.Error("admin: devices", "user", user, "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not read this member's devices. Please try again in a minute.")
		return
	}
	now := time.Now()
	d := memberPageData{Nav: adminNav("/admin/members"), User: user, Self: user == self(r), Done: devicesDone[r.URL.Query().Get("done")]}
	d.Devices = deviceRows(devs, now)
	u.tpl.Render(w, r, http.StatusOK, "admin-member", d)
}

func (u *UI) memberSignOut(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.Devices == nil {
		adminUnavailable(w, r)
		return
	}
	// memberTarget refuses the admin's own account, as for every other
	// change here (their own devices are signed out by another admin).
	user, ok := u.memberTarget(w, r)
	if !ok {
		return
	}
	if _, err := u.d.Admin.Devices.SignOutAll(user); err != nil {
		u.memberFailed(w, r, "sign out", err)
		return
	}
	// The member's open pages on this box end too.
	u.sess.EndUser(user)
	back(w, r, memberPath(user), "signout")
}

// /devices: a member's own apps, and "sign out all my apps" (a phone
// lost or sold) without asking an admin. The browser that asks stays
// logged in to these pages; the member's other page sessions end.

var ownDevicesDone = map[string]string{
	"signout": "All your apps are signed out. Apps that saved your password log in again by themselves: if a phone was lost or taken, ask an admin for a password link and choose a new password.",
}

type ownDevicesData struct {
	Done    string
	Devices []deviceRow
}

func deviceRows(devs []Device, now time.Time) []deviceRow {
	var out []deviceRow
	for _, x := range devs {
		row := deviceRow{Name: deviceName(x), Used: ago(now, x.LastUsed)}
		if x.TokenExpiry.After(now) {
			row.KeyUntil = x.TokenExpiry.Local().Format("2 January 2006")
		}
		out = append(out, row)
	}
	return out
}

func (u *UI) ownDevicesPage(w http.ResponseWriter, r *http.Request) {
	dv := u.d.Admin.Devices
	if dv == nil {
		adminUnavailable(w, r)
		return
	}
	devs, err := dv.List(self(r))
	if err != nil {
		u.d.Log.Error("devices", "user", self(r), "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not read your devices. Please try again in a minute.")
		return
	}
	u.tpl.Render(w, r, http.StatusOK, "devices", ownDevicesData{Done: ownDevicesDone[r.URL.Query().Get("done")], Devices: deviceRows(devs, time.Now())})
}

func (u *UI) ownDevicesSignOut(w http.ResponseWriter, r *http.Request) {
	dv := u.d.Admin.Devices
	if dv == nil {
		adminUnavailable(w, r)
		return
	}
	x := page.SessionOf(r)
	if _, err := dv.SignOutAll(x.User); err != nil {
		u.memberFailed(w, r, "sign out", err)
		return
	}
	u.sess.EndUser(x.User)
	u.sess.Change(w, r, x, func(*page.Session) {})
	back(w, r, "/devices", "signout")
}
