package setupui

import (
	"net/http"
	"strings"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// access is who may use a route.
type access int

const (
	public    access = iota // anyone (the pages check what they must)
	setupOnly               // the setup code was accepted, box not claimed
	member                  // a logged-in member
	admin                   // a logged-in admin
)

type route struct {
	pattern string // net/http pattern with method
	access  access
	h       http.HandlerFunc
}

// routes is every page. POST routes are CSRF-protected by handler().
func (u *UI) routes() []route {
	return []route{
		{"GET /{$}", public, u.home},
		{"GET " + page.CSSPath, public, page.StaticHandler().ServeHTTP},
		{"GET /setup", public, u.codeForm},
		{"POST /setup", public, u.codeSubmit},
		{"GET /setup/account", setupOnly, u.accountForm},
		{"POST /setup/account", setupOnly, u.accountSubmit},
		// "I have a backup" (restore.go); the file itself is posted to
		// RestorePath, mounted on the web server (a streamed upload).
		{"GET /setup/restore", setupOnly, u.restoreForm},
		{"GET /setup/reach", admin, u.reachForm},
		{"POST /setup/reach", admin, u.reachSubmit},
		{"GET /setup/invite", admin, u.inviteForm},
		{"POST /setup/invite", admin, u.inviteSubmit},
		{"GET /setup/done", admin, u.done},
		{"GET /login", public, u.loginForm},
		{"POST /login", public, u.loginSubmit},
		{"POST /logout", member, u.logout},
		// Invite and reset links (landing.go): the token is the key.
		{"GET /i/{token}", public, u.landing},
		{"GET /i/{token}/join", public, u.joinForm},
		{"POST /i/{token}/join", public, u.joinSubmit},
		{"GET /i/{token}/poster", public, u.poster},
		{"GET /reset/{token}", public, u.resetForm},
		{"POST /reset/{token}", public, u.resetSubmit},
		{"GET /invite", member, u.memberInviteForm},
		{"POST /invite", member, u.memberInviteSubmit},
		{"POST /invite/members", admin, u.membersMayInvite},
		{"GET /devices", member, u.ownDevicesPage},
		{"POST /devices/signout", member, u.ownDevicesSignOut},
		{"GET /move", member, u.moveForm},
		{"POST /move", member, u.moveSubmit},
		// Account data as XEP-0227 files (account_data.go).
		{"GET /data", member, u.dataPage},
		{"POST /data/export", member, u.dataExport},
		{"GET /admin/data", admin, u.adminDataPage},
		{"POST /admin/data/export", admin, u.adminDataExport},
		{"POST " + AdminImportPath, admin, u.adminDataImport},
		// The admin pages (admin*.go).
		{"GET /admin/{$}", admin, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/admin/members", http.StatusSeeOther)
		}},
		{"GET /admin/members", admin, u.membersPage},
		{"POST /admin/members/role", admin, u.memberRole},
		{"POST /admin/members/remove", admin, u.memberRemove},
		{"POST /admin/members/undo", admin, u.memberUndo},
		{"POST /admin/members/reset", admin, u.memberReset},
		{"GET /admin/members/{user}", admin, u.memberPage},
		{"POST /admin/members/signout", admin, u.memberSignOut},
		{"GET /admin/invites", admin, u.adminInvitesPage},
		{"POST /admin/invites", admin, u.adminInviteCreate},
		{"POST /admin/invites/revoke", admin, u.adminInviteRevoke},
		{"GET /admin/circles", admin, u.circlesPage},
		{"POST /admin/circles", admin, u.circleCreate},
		{"POST /admin/circles/add", admin, u.circleAdd},
		{"POST /admin/circles/leave", admin, u.circleLeave},
		{"POST /admin/circles/delete", admin, u.circleDelete},
		{"GET /admin/announce", admin, u.announceForm},
		{"POST /admin/announce", admin, u.announceSubmit},
		{"GET /admin/health", admin, u.healthPage},
		{"GET /admin/backup", admin, u.backupForm},
		{"POST /admin/backup", admin, u.backupDownload},
		{"POST /admin/backup/nightly", admin, u.backupNightly},
		{"POST /admin/updates/check", admin, u.updateCheck},
		{"POST /admin/updates/settings", admin, u.updateSettings},
		{"POST /admin/storage/settings", admin, u.storageSettings},
		{"GET /admin/federation", admin, u.federationPage},
		{"POST /admin/federation", admin, u.federationSave},
		// Everything else: the friendly page, not ServeMux's plain text.
		{"/", public, notFound},
	}
}

func (rt route) handler() http.Handler {
	var h http.Handler = rt.h
	switch rt.access {
	case setupOnly:
		h = requireSetup(h)
	case member:
		h = page.RequireLogin(h)
	case admin:
		h = page.RequireAdmin(h)
	}
	if strings.HasPrefix(rt.pattern, "POST ") {
		// Protect runs first: a POST without this session's token
		// changes nothing, whoever sends it.
		h = page.Protect(h)
	}
	if limit, ok := uploads[rt.pattern]; ok {
		h = uploadFirst(h, limit) // a file form: parsed before Protect (account_data.go)
	}
	return h
}

// requireSetup lets through sessions that gave the setup code.
func requireSetup(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if x := page.SessionOf(r); x == nil || !x.Setup {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/setup", http.StatusSeeOther)
				return
			}
			page.Error(w, r, http.StatusForbidden, "Enter the setup code first.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	page.Error(w, r, http.StatusNotFound, "There is no page at this address. Check the link, or start from the home page.")
}
