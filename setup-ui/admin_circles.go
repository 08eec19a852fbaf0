package setupui

import (
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// Circles (Snikket's idea): named groups of members, say "Rowers" or
// "Committee". Everyone in a circle has everyone else in it in their
// contact list, without asking each other first. Once the box has group
// chats, each circle also gets one its members share; that part waits for
// group chat (MUC) and is not built yet.

type circlesData struct {
	Nav     template.HTML
	Circles []circleRow
	Done    string
}

type circleRow struct {
	Circle
	Others []string // members not in the circle, for the "add" choice
	ID     string   // for label/id pairs
}

var circleDone = map[string]string{
	"create": "The circle is made. Add members to it below.",
	"add":    "Added. Everyone in the circle now sees the new member in their contact list.",
	"leave":  "Taken out of the circle.",
	"delete": "The circle is gone. Contacts its members already have stay.",
}

// maxCircleName bounds a circle's name (it becomes a contact-list group).
const maxCircleName = 40

func (u *UI) circlesPage(w http.ResponseWriter, r *http.Request) {
	c, m := u.d.Admin.Circles, u.d.Admin.Members
	if c == nil || m == nil {
		adminUnavailable(w, r)
		return
	}
	list, err := c.List()
	var members []Member
	if err == nil {
		members, err = m.List()
	}
	if err != nil {
		u.d.Log.Error("admin: circles", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not read its circles. Please try again in a minute.")
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	d := circlesData{Nav: adminNav("/admin/circles"), Done: circleDone[r.URL.Query().Get("done")]}
	for i, ci := range list {
		in := map[string]bool{}
		for _, x := range ci.Members {
			in[x] = true
		}
		row := circleRow{Circle: ci, ID: "c" + strconv.Itoa(i)}
		sort.Strings(row.Members)
		for _, x := range members {
			if !in[x.User] && !x.Removing {
				row.Others = append(row.Others, x.User)
			}
		}
		sort.Strings(row.Others)
		d.Circles = append(d.Circles, row)
	}
	u.tpl.Render(w, r, http.StatusOK, "admin-circles", d)
}

func (u *UI) circleChange(w http.ResponseWriter, r *http.Request, what string, f func(Circles, string) error) {
	c := u.d.Admin.Circles
	if c == nil {
		adminUnavailable(w, r)
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("circle"))
	if name == "" || utf8.RuneCountInString(name) > maxCircleName || strings.ContainsAny(name, "\x00\r\n") {
		page.Error(w, r, http.StatusBadRequest, "A circle needs a name of at most 40 letters. Nothing was changed.")
		return
	}
	if err := f(c, name); err != nil {
		u.d.Log.Error("admin: circle "+what, "circle", name, "err", err)
		page.Error(w, r, http.StatusBadRequest, "That did not work: "+err.Error()+". Nothing was changed.")
		return
	}
	back(w, r, "/admin/circles", what)
}

func (u *UI) circleCreate(w http.ResponseWriter, r *http.Request) {
	u.circleChange(w, r, "create", func(c Circles, n string) error { return c.Create(n) })
}

func (u *UI) circleDelete(w http.ResponseWriter, r *http.Request) {
	u.circleChange(w, r, "delete", func(c Circles, n string) error { return c.Delete(n) })
}

func (u *UI) circleAdd(w http.ResponseWriter, r *http.Request) {
	u.circleChange(w, r, "add", func(c Circles, n string) error { return c.Add(n, r.PostForm.Get("user")) })
}

func (u *UI) circleLeave(w http.ResponseWriter, r *http.Request) {
	u.circleChange(w, r, "leave", func(c Circles, n string) error { return c.Leave(n, r.PostForm.Get("user")) })
}
