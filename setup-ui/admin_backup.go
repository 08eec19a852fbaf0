package setupui

// The admin's whole-box backup: choose a passphrase, download one
// encrypted file (appliance/backup) holding everything a new SD card needs
// to become this box again. Restoring it is the setup wizard's "I have a
// backup" (restore.go).

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/hearthchat/hearth/appliance/backup"
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// Backups makes and restores whole-box backups (xmppd/webbackup.go).
type Backups interface {
	// Name is the file name for a backup made now.
	Name() string
	// Write writes an encrypted backup of the whole box to w. It writes
	// nothing to w before the database copy was taken and checked, so an
	// early error can still be shown as a page.
	Write(w io.Writer, passphrase string) error
	// Stage reads a backup from r and checks all of it, then keeps it
	// ready to be put in place (nothing changes yet); it returns a
	// description. Errors wrap appliance/backup's (ErrPassphrase, …).
	Stage(r io.Reader, passphrase string) (string, error)
	// Apply restarts the chat service, which puts the staged backup in
	// place before it opens anything. False: it cannot restart itself.
	Apply() bool
	// Nightly is the nightly backup's last outcome; the folder, number
	// kept and hour are the config's Backup section.
	Nightly() Nightly
	// SetPassphrase stores the nightly backup's passphrase.
	SetPassphrase(pw string) error
	// RunNightly makes the nightly backup now and returns its outcome.
	RunNightly() Nightly
}

// Nightly is what the page shows of the nightly backup.
type Nightly struct {
	HasPassphrase bool
	Attempt, OK   time.Time // the last run; the last that wrote a backup
	File          string
	Bytes         int64
	Copies        int
	Error         string // why the last run failed
	// With the USB stick as destination: which stick the box sees now,
	// in words ("No USB stick is plugged in."), and the stick the last
	// backup went to with its free space after it.
	Stick, OnStick string
}

type backupData struct {
	Nav     template.HTML
	Error   string
	Done    string
	Nightly Nightly
	Dir     string
	Keep    int
	Hour    int
	// NightError is a problem with the nightly settings form.
	NightError string
}

// render shows the backup page with the nightly settings filled in.
func (u *UI) renderBackup(w http.ResponseWriter, r *http.Request, code int, d backupData) {
	d.Nav = adminNav("/admin/backup")
	d.Nightly = u.d.Backup.Nightly()
	if c, err := u.d.Config.Load(); err == nil {
		d.Dir, d.Keep, d.Hour = c.Backup.Dir, c.Backup.KeepN(), c.Backup.HourOfDay()
	}
	u.tpl.Render(w, r, code, "admin-backup", d)
}

func (u *UI) backupForm(w http.ResponseWriter, r *http.Request) {
	if u.d.Backup == nil {
		adminUnavailable(w, r)
		return
	}
	d := backupData{}
	switch r.URL.Query().Get("done") {
	case "nightly":
		d.Done = "Saved. The backup runs every night while the stick is plugged in."
	case "off":
		d.Done = "The nightly backup is off."
	}
	u.renderBackup(w, r, http.StatusOK, d)
}

// backupNightly saves the nightly backup's settings (and with "now",
// also runs it at once).
func (u *UI) backupNightly(w http.ResponseWriter, r *http.Request) {
	if u.d.Backup == nil {
		adminUnavailable(w, r)
		return
	}
	f := r.PostForm
	if f.Get("action") == "now" {
		n := u.d.Backup.RunNightly()
		d := backupData{}
		if n.Error != "" {
			d.NightError = "The backup could not be made: " + n.Error
		} else {
			d.Done = "Backed up to the stick."
		}
		u.renderBackup(w, r, http.StatusOK, d)
		return
	}
	dir := strings.TrimSpace(f.Get("dir"))
	switch f.Get("dest") { // absent: the folder field alone decides (older page)
	case "usb":
		dir = backup.USB
	case "off":
		dir = ""
	}
	keep, kerr := strconv.Atoi(f.Get("keep"))
	hour, herr := strconv.Atoi(f.Get("hour"))
	pw := f.Get("passphrase")
	var msg string
	switch {
	case f.Get("dest") == "folder" && dir == "":
		msg = "Type the folder's full path, or choose the USB stick."
	case dir != "" && dir != backup.USB && (!filepath.IsAbs(dir) || filepath.Clean(dir) != dir):
		msg = "The folder must be a full path, such as /mnt/usb/hearth."
	case kerr != nil || keep < 1 || keep > 100:
		msg = "Keep between 1 and 100 backups."
	case herr != nil || hour < 0 || hour > 23:
		msg = "Choose an hour from 0 to 23."
	case dir != "" && pw == "" && !u.d.Backup.Nightly().HasPassphrase:
		msg = "Choose a passphrase for the nightly backups."
	case pw != "":
		msg = backupPassphrase(pw, f.Get("passphrase2"))
	}
	if msg != "" {
		u.renderBackup(w, r, http.StatusBadRequest, backupData{NightError: msg})
		return
	}
	if pw != "" {
		if err := u.d.Backup.SetPassphrase(pw); err != nil {
			u.d.Log.Error("admin: backup passphrase", "err", err)
			page.Error(w, r, http.StatusInternalServerError, "The box could not save the passphrase. Nothing was changed; please try again.")
			return
		}
	}
	if err := u.d.Config.Update(func(c *config.Config) error {
		c.Backup.Dir, c.Backup.Keep, c.Backup.Hour = dir, keep, &hour
		return nil
	}); err != nil {
		u.d.Log.Error("admin: backup settings", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not save the settings. Please try again.")
		return
	}
	if dir == "" {
		back(w, r, "/admin/backup", "off")
		return
	}
	back(w, r, "/admin/backup", "nightly")
}

// backupPassphrase checks a new backup's passphrase and its repetition.
func backupPassphrase(pw, again string) string {
	switch {
	case utf8.RuneCountInString(pw) < backup.MinPassphrase:
		return fmt.Sprintf("The passphrase needs at least %d characters. A few words in a row are easy to remember and hard to guess.", backup.MinPassphrase)
	case len(pw) > 1024:
		return "That passphrase is too long."
	case pw != again:
		return "The two passphrases are not the same. Please type it again in both fields."
	}
	return ""
}

func (u *UI) backupDownload(w http.ResponseWriter, r *http.Request) {
	if u.d.Backup == nil {
		adminUnavailable(w, r)
		return
	}
	pw := r.PostForm.Get("passphrase")
	if msg := backupPassphrase(pw, r.PostForm.Get("passphrase2")); msg != "" {
		u.renderBackup(w, r, http.StatusBadRequest, backupData{Error: msg})
		return
	}
	name := u.d.Backup.Name()
	lw := &lazyDownload{w: w, name: name}
	if err := u.d.Backup.Write(lw, pw); err != nil {
		u.d.Log.Error("admin: backup", "err", err)
		if !lw.started {
			page.Error(w, r, http.StatusInternalServerError, "The box could not make the backup. Nothing was changed; please try again. If it happens again, look at the health page.")
		}
		// Once bytes went out the browser has a partial file; the
		// connection is cut so that it reports a failed download rather
		// than a complete one (a restore would refuse it anyway: cut off).
		if lw.started {
			panic(http.ErrAbortHandler)
		}
		return
	}
	u.d.Log.Info("admin: backup downloaded", "by", page.SessionOf(r).User, "file", name)
}

// lazyDownload sends the download's headers with the first byte.
type lazyDownload struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (l *lazyDownload) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		h := l.w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", `attachment; filename="`+l.name+`"`)
		h.Set("Cache-Control", "no-store")
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

// restoreMessage is what a person reads when a backup cannot be restored.
func restoreMessage(err error) string {
	switch {
	case errors.Is(err, backup.ErrPassphrase):
		return "That is not the passphrase of this backup. Nothing was changed; try again (capital letters and spaces count)."
	case errors.Is(err, backup.ErrTruncated):
		return "This backup file is incomplete: it was cut off while it was saved or copied. Nothing was changed. Try another copy (the backup stick keeps several)."
	case errors.Is(err, backup.ErrNewer):
		return "This backup was made by a newer version of Hearth than this card has. Nothing was changed. Let the box update first (or flash the newest image), then restore."
	case errors.Is(err, backup.ErrNotBackup):
		return "This file is not a Hearth backup. Nothing was changed. The backup's name ends in " + backup.Suffix + "."
	case errors.Is(err, backup.ErrDamaged):
		return "This backup file is damaged. Nothing was changed. Try another copy (the backup stick keeps several)."
	case errors.Is(err, syscall.ENOSPC):
		return "The box's memory card is too small for this backup. Nothing was changed. Use a larger card (at least twice the backup's size)."
	case errors.Is(err, backup.ErrPending):
		return "A backup is already waiting to be put in place; the box does it when it restarts."
	}
	return "The box could not restore this backup. Nothing was changed; please try again."
}
