package setupui

import (
	"html/template"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// Announcements: a message from the chat itself to every member, received
// at once by those online and kept for the others until they come back.

// maxAnnouncement bounds an announcement (it is stored once per member).
const maxAnnouncement = 2000

type announceData struct {
	Nav    template.HTML
	Text   string
	Error  string
	Result *AnnounceResult
}

func (u *UI) announceForm(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.Announce == nil {
		adminUnavailable(w, r)
		return
	}
	u.tpl.Render(w, r, http.StatusOK, "admin-announce", announceData{Nav: adminNav("/admin/announce")})
}

func (u *UI) announceSubmit(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.Announce == nil {
		adminUnavailable(w, r)
		return
	}
	d := announceData{Nav: adminNav("/admin/announce"), Text: strings.TrimSpace(r.PostForm.Get("text"))}
	switch {
	case d.Text == "":
		d.Error = "Please write the announcement first."
	case utf8.RuneCountInString(d.Text) > maxAnnouncement || !utf8.ValidString(d.Text):
		d.Error = "That is too long for an announcement: at most 2000 letters, please."
	}
	if d.Error != "" {
		u.tpl.Render(w, r, http.StatusBadRequest, "admin-announce", d)
		return
	}
	res, err := u.d.Admin.Announce(d.Text)
	if err != nil {
		u.d.Log.Error("admin: announce", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not send the announcement. Please try again.")
		return
	}
	d.Result = &res
	u.tpl.Render(w, r, http.StatusOK, "admin-announce", d)
}
