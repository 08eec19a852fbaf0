package setupui

// The setup wizard's "I have a backup": on a freshly flashed card, after
// the setup code, the person uploads a backup file (admin_backup.go makes
// them) with its passphrase; the box checks all of it, restarts, and comes
// back as the old box: same domain, accounts, history, certificates and
// onion address. Until the restart nothing changes (appliance/backup:
// staged, checked, then swapped in by renames at start).

import (
	"crypto/subtle"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// RestorePath is where the wizard's restore form posts the backup file.
// The web server mounts RestoreUpload there with web.Server.HandleStream:
// a backup is far larger than the page forms' body limit and can take
// longer than the server's read timeout to arrive over Wi-Fi.
const RestorePath = "/setup/restore/upload"

type restoreData struct {
	Error     string
	Path      string
	Done      string // description of the restored backup
	Domain    string
	Restarted bool
}

func (u *UI) restoreForm(w http.ResponseWriter, r *http.Request) {
	if u.claimed() {
		http.Redirect(w, r, "/setup/reach", http.StatusSeeOther)
		return
	}
	if u.d.Backup == nil {
		page.Error(w, r, http.StatusServiceUnavailable, "This box cannot restore a backup. Set it up as a new chat instead.")
		return
	}
	u.tpl.Render(w, r, http.StatusOK, "setup-restore", restoreData{Path: RestorePath})
}

// RestoreUpload is the handler for RestorePath (see there). It does what
// the route table and page.Protect do for other forms itself, because the
// body is a multipart upload read as a stream: the session must hold the
// setup code, the box must be unclaimed, the form must come from this
// site, and the csrf field, which the form puts before the file, must
// match before a byte of the file is read.
func (u *UI) RestoreUpload() http.Handler {
	return u.sess.Middleware(http.HandlerFunc(u.restoreUpload))
}

// maxBackupUpload bounds an upload (the largest SD card's data, roughly).
const maxBackupUpload = 256 << 30

func (u *UI) restoreUpload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		page.Error(w, r, http.StatusMethodNotAllowed, "This address only takes a form.")
		return
	}
	if !page.SameOrigin(r) {
		page.Error(w, r, http.StatusForbidden, "This form was sent from another web site, so the box ignored it. Open the page on the box itself and try again.")
		return
	}
	x := page.SessionOf(r)
	if x == nil || !x.Setup {
		page.Error(w, r, http.StatusForbidden, "Enter the setup code first.")
		return
	}
	if u.claimed() {
		page.Error(w, r, http.StatusForbidden, "This box is already set up. A backup can only be restored onto a freshly flashed card.")
		return
	}
	if u.d.Backup == nil {
		page.Error(w, r, http.StatusServiceUnavailable, "This box cannot restore a backup.")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		page.Error(w, r, http.StatusBadRequest, "The form could not be read. Nothing was changed; please try again.")
		return
	}
	// A large file over Wi-Fi outlasts the server's one-minute read
	// timeout; the CSRF check below comes first in the body.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(2 * time.Hour))
	r.Body = http.MaxBytesReader(w, r.Body, maxBackupUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		page.Error(w, r, http.StatusBadRequest, "The form could not be read. Nothing was changed; please try again.")
		return
	}
	fail := func(code int, msg string) {
		u.tpl.Render(w, r, code, "setup-restore", restoreData{Path: RestorePath, Error: msg})
	}
	var csrf, pass string
	small := func(p *multipart.Part) (string, error) {
		b, err := io.ReadAll(io.LimitReader(p, 4096))
		return string(b), err
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			fail(http.StatusBadRequest, "Please choose the backup file and type its passphrase.")
			return
		}
		switch p.FormName() {
		case "csrf":
			csrf, _ = small(p)
		case "passphrase":
			pass, _ = small(p)
		case "file":
			if csrf == "" || subtle.ConstantTimeCompare([]byte(csrf), []byte(x.CSRF)) != 1 {
				page.Error(w, r, http.StatusForbidden, "This form is out of date (the page was open for a long time, or the box restarted). Nothing was changed: go back, reload the page and send it again.")
				return
			}
			if pass == "" {
				fail(http.StatusBadRequest, "Please type the backup's passphrase.")
				return
			}
			if p.FileName() == "" {
				fail(http.StatusBadRequest, "Please choose the backup file.")
				return
			}
			desc, err := u.d.Backup.Stage(p, pass)
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					fail(http.StatusRequestEntityTooLarge, "That file is far larger than any backup. Nothing was changed.")
					return
				}
				u.d.Log.Warn("setup: restore refused", "err", err)
				fail(http.StatusUnprocessableEntity, restoreMessage(err))
				return
			}
			u.d.Log.Info("setup: backup staged; restarting to put it in place", "backup", desc)
			d := restoreData{Done: desc}
			// The setup code's session ends: after the restart the box is
			// the old one, claimed, and its admins log in as before.
			u.sess.End(w, r, x)
			d.Restarted = u.d.Backup.Apply()
			u.tpl.Render(w, r, http.StatusOK, "setup-restored", d)
			return
		default:
			io.Copy(io.Discard, io.LimitReader(p, 4096))
		}
	}
}
