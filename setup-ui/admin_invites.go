package setupui

import (
	"errors"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// The admin's invitations: make one (one person or a group, how long,
// what the new member may do, a note), see the open ones, revoke.

type adminInvitesData struct {
	Nav     template.HTML
	List    []Invite
	Made    *Invite
	QR      template.HTML
	Landing string       // the invitation's web page (landing.go)
	AppURI  template.URL // its app link, safe for href (appURI)
	Done    string
	Resets  int // open password links (listed apart: they are not invitations)
	MaxNote int
}

const maxInviteNote = 200

func (u *UI) adminInvitesPage(w http.ResponseWriter, r *http.Request) {
	u.renderAdminInvites(w, r, http.StatusOK, nil)
}

func (u *UI) renderAdminInvites(w http.ResponseWriter, r *http.Request, code int, made *Invite) {
	list, err := u.d.Invites.List()
	if err != nil {
		u.d.Log.Error("admin: invites", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not read its invitations. Please try again in a minute.")
		return
	}
	d := adminInvitesData{Nav: adminNav("/admin/invites"), Made: made, MaxNote: maxInviteNote}
	if r.URL.Query().Get("done") == "revoke" {
		d.Done = "The invitation no longer works."
	}
	for _, inv := range list {
		if inv.Reset != "" {
			d.Resets++
			continue
		}
		d.List = append(d.List, inv)
	}
	sort.Slice(d.List, func(i, j int) bool { return d.List[i].Expires.Before(d.List[j].Expires) })
	if made != nil {
		// The web page, not the app link: it works on a phone without
		// an app yet and leads to one (landing.go).
		d.Landing, d.AppURI = LandingURL(r, made.Token), appURI(made.URI)
		d.QR, _ = QRSVG(d.Landing, "QR code of the invitation")
	}
	u.tpl.Render(w, r, code, "admin-invites", d)
}

func (u *UI) adminInviteCreate(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	ttl, ok := validity[f.Get("valid")]
	role := Role(f.Get("role"))
	switch role {
	case RoleAdmin, RoleMember, RoleLimited:
	default:
		ok = false
	}
	note := strings.TrimSpace(f.Get("note"))
	if !ok || utf8.RuneCountInString(note) > maxInviteNote {
		page.Error(w, r, http.StatusBadRequest, "Please choose how long the invitation stays valid and what the new member may do (and keep the note short). Nothing was made.")
		return
	}
	o := InviteOptions{Inviter: self(r), TTL: ttl, Uses: 1, Role: string(role), Admin: role == RoleAdmin, Note: note}
	if f.Get("who") == "group" && role != RoleAdmin {
		// An admin invite is for one person (as in the wizard).
		o.Uses = 50
	}
	inv, err := u.d.Invites.Create(o)
	if err != nil {
		if errors.Is(err, ErrTooManyInvites) {
			page.Error(w, r, http.StatusConflict, "There are too many open invitations. Revoke some below, or wait until they run out.")
			return
		}
		u.d.Log.Error("admin: invite", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not make the invitation. Please try again.")
		return
	}
	u.renderAdminInvites(w, r, http.StatusCreated, &inv)
}

func (u *UI) adminInviteRevoke(w http.ResponseWriter, r *http.Request) {
	tok := r.PostForm.Get("token")
	if tok == "" {
		page.Error(w, r, http.StatusBadRequest, "No invitation was chosen. Nothing was changed.")
		return
	}
	if err := u.d.Invites.Revoke(tok); err != nil {
		page.Error(w, r, http.StatusNotFound, "That invitation does not exist any more (it was used up, ran out or was revoked). Nothing was changed.")
		return
	}
	back(w, r, "/admin/invites", "revoke")
}
