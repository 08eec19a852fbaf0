package setupui

// "Your data is yours" (issue 15): a member downloads their account as an
// XEP-0227 file (/data), a new member brings such a file from another
// server while registering with an invite (the join form's optional file),
// and the admin exports every member's account or imports members from a
// file (/admin/data). The file format and the store are xmppd's
// (xmppd/portable, wired in xmppd/webportable.go); these pages only carry
// the file.

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// ImportResult is what an import stored, for the page.
type ImportResult struct {
	Users              []string
	Contacts, Archived int
	Skipped            int // parts of the file the box did not understand (left out)
}

// ImportError is a problem with an imported file; Reason says it in words
// the page shows ("the file holds more than one account", "anna exists on
// this server"). Any other error is the box's and shown as "try again".
type ImportError struct{ Reason string }

func (e *ImportError) Error() string { return e.Reason }

// Upload limits. The form is parsed whole before the CSRF check can run
// (page.Protect reads the token from the parsed form), so the file is
// spooled by net/http to $TMPDIR past maxUploadMemory — on the box that is
// RAM (a tmpfs, see appliance/backup), so the limit is what the box can
// hold for a moment, not the import's own bound
// (xmppd/portable.DefaultMaxBytes, 256 MiB). 64 MB is an account with
// ~250,000 archived messages (about 250 bytes each in the file); a larger
// whole-server file goes through `xmppd import` on the box.
const (
	maxJoinData     = 64 << 20
	maxAdminImport  = 64 << 20
	maxUploadMemory = 1 << 20
)

// AdminImportPath is where the admin's import form posts. Like /i/, the
// web server mounts the pages there with web.Server.HandleStream: its
// one-MiB body limit for other pages would cut a file short. Every other
// form under those paths is still bounded by page.Protect.
const AdminImportPath = "/admin/data/import"

// uploads are the routes whose form carries a file (multipart): their
// body is read before page.Protect checks the CSRF token (uploadFirst).
var uploads = map[string]int64{
	"POST /i/{token}/join":    maxJoinData,
	"POST " + AdminImportPath: maxAdminImport,
}

// uploadFirst parses a multipart form of at most limit bytes before the
// route's other checks, so page.Protect finds the csrf field in
// r.PostForm as for any other form (ParseForm leaves multipart bodies
// alone: without this every file form was refused as "out of date").
// What Protect checks first, it checks first here too: a form from another
// site is not read at all.
func uploadFirst(h http.Handler, limit int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if r.Method != http.MethodPost || mt != "multipart/form-data" || !page.SameOrigin(r) || page.SessionOf(r) == nil {
			h.ServeHTTP(w, r) // Protect refuses or reads it as a plain form
			return
		}
		// A large file over Wi-Fi may outlast the web server's one-minute
		// read timeout.
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(30 * time.Minute))
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := r.ParseMultipartForm(maxUploadMemory); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				// The limit that cut it (the web server's own, where this
				// path is not mounted to bound its body itself).
				page.Error(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("The file is larger than the %d MB this form takes. Nothing was changed.", max(1, tooBig.Limit>>20)))
				return
			}
			page.Error(w, r, http.StatusBadRequest, "The form could not be read. Nothing was changed; please try again.")
			return
		}
		defer r.MultipartForm.RemoveAll()
		h.ServeHTTP(w, r)
	})
}

// formFile returns the uploaded file of field name, nil when none was
// chosen (browsers send an empty part without a file name).
func formFile(r *http.Request, name string) (io.ReadCloser, bool) {
	if r.MultipartForm == nil || len(r.MultipartForm.File[name]) == 0 {
		return nil, false
	}
	fh := r.MultipartForm.File[name][0]
	if fh.Filename == "" && fh.Size == 0 {
		return nil, false
	}
	f, err := fh.Open()
	if err != nil {
		return nil, false
	}
	return f, true
}

// exportName is the download's file name: the address and the day.
func exportName(who, domain string) string {
	safe := regexp.MustCompile(`[^A-Za-z0-9._@-]+`)
	return safe.ReplaceAllString(who+"@"+domain, "_") + "-" + time.Now().UTC().Format("2006-01-02") + ".xml"
}

// sendExport streams the accounts users (nil: every member) as an
// attachment. An error before the first byte is a page; after it the
// download is cut short (its XML unclosed, so an import refuses it).
func (u *UI) sendExport(w http.ResponseWriter, r *http.Request, users []string, filename string) {
	h := w.Header()
	h.Set("Content-Type", "application/xml; charset=utf-8")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	h.Set("Cache-Control", "no-store")
	lw := &lazyWriter{w: w}
	if err := u.d.Admin.Export(users, lw); err != nil {
		u.d.Log.Error("account data: export", "users", users, "err", err)
		if !lw.started {
			h.Del("Content-Disposition")
			page.Error(w, r, http.StatusInternalServerError, "The box could not write the file. Please try again in a minute.")
		}
	}
}

// lazyWriter remembers whether anything was written (the status is then
// sent and a page can no longer replace the download).
type lazyWriter struct {
	w       io.Writer
	started bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	l.started = true
	return l.w.Write(p)
}

// /data: the member's own account as a file.

type dataPageData struct{ Domain, User string }

func (u *UI) dataPage(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.Export == nil {
		adminUnavailable(w, r)
		return
	}
	u.tpl.Render(w, r, http.StatusOK, "account-data", dataPageData{Domain: u.d.Domain(), User: self(r)})
}

func (u *UI) dataExport(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.Export == nil {
		adminUnavailable(w, r)
		return
	}
	u.sendExport(w, r, []string{self(r)}, exportName(self(r), u.d.Domain()))
}

// /admin/data: every member's account as one file, and members from a
// file.

type adminDataData struct {
	Nav    template.HTML
	Error  string
	Done   *ImportResult
	Limit  int64
	Action string
}

func (u *UI) adminDataPage(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.Export == nil || u.d.Admin.Import == nil {
		adminUnavailable(w, r)
		return
	}
	u.tpl.Render(w, r, http.StatusOK, "admin-data", adminDataData{Nav: adminNav("/admin/data"), Limit: maxAdminImport >> 20, Action: AdminImportPath})
}

func (u *UI) adminDataExport(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.Export == nil {
		adminUnavailable(w, r)
		return
	}
	u.d.Log.Info("account data: whole-server export", "admin", self(r))
	u.sendExport(w, r, nil, exportName("all-members", u.d.Domain()))
}

func (u *UI) adminDataImport(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.Import == nil {
		adminUnavailable(w, r)
		return
	}
	d := adminDataData{Nav: adminNav("/admin/data"), Limit: maxAdminImport >> 20, Action: AdminImportPath}
	f, ok := formFile(r, "file")
	if !ok {
		d.Error = "Please choose the file to import (an XEP-0227 file exported from this box or another server)."
		u.tpl.Render(w, r, http.StatusBadRequest, "admin-data", d)
		return
	}
	defer f.Close()
	res, err := u.d.Admin.Import(f)
	var ie *ImportError
	switch {
	case errors.As(err, &ie):
		d.Error = "Nothing was imported: " + ie.Reason
		u.tpl.Render(w, r, http.StatusUnprocessableEntity, "admin-data", d)
		return
	case err != nil:
		u.d.Log.Error("account data: import", "err", err)
		d.Error = "The box could not import the file. Nothing was imported; please try again in a minute."
		u.tpl.Render(w, r, http.StatusInternalServerError, "admin-data", d)
		return
	}
	u.d.Log.Info("account data: members imported", "admin", self(r), "users", strings.Join(res.Users, " "))
	d.Done = &res
	u.tpl.Render(w, r, http.StatusOK, "admin-data", d)
}

// redeem is joinSubmit's registration: with the form's optional file
// ("data") the account is made from it, all or nothing with the
// registration (an *ImportError says what is wrong with the file), else
// as before.
func (u *UI) redeem(r *http.Request, token, user, pw string) (string, error) {
	f, has := formFile(r, "data")
	if !has || u.d.Admin.JoinWithData == nil {
		return u.d.Invites.Redeem(token, user, pw)
	}
	defer f.Close()
	name, res, err := u.d.Admin.JoinWithData(token, user, pw, f)
	if err == nil {
		u.d.Log.Info("invite: account made from a file", "user", name, "contacts", res.Contacts, "archived", res.Archived)
	}
	return name, err
}

// joinImportMessage is the join page's words for a file that could not be
// used.
func joinImportMessage(err error) (string, bool) {
	var ie *ImportError
	if !errors.As(err, &ie) {
		return "", false
	}
	return "Your account was not made, because the file you chose could not be used: " + ie.Reason + " Choose another file, or join without one.", true
}
