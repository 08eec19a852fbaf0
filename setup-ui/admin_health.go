package setupui

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/diskuse"
	"github.com/hearthchat/hearth/netconf/status"
	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// The health page: storage, memory, uptime, connected devices, the
// certificate, netconf's reachability report in its own words, and the
// update agent's status with what the admin may do about updates (check
// now, the night-time window, pause).

type healthData struct {
	Nav      template.HTML
	H        Health
	Storage  string // "1.2 GB used of 29 GB (27 GB free)"
	Database string
	// From the storage history (appliance/diskuse): the rate it fills at,
	// the forecast, the bytes written per day, and a warning.
	Growth, Forecast, Written string
	DiskWarn                  string
	// How long messages and shared files are kept, in days.
	KeepMessages, KeepFiles int
	Memory                  string
	BoxUp                   string
	ChatUp                  string
	Cert                    string
	CertBad                 bool
	Backup                  string // the last backup in words
	BackupBad               bool   // none yet, or the last try failed
	Checks                  []status.Check
	NoReport                bool
	U                       UpdateStatus
	Auto                    bool
	Window                  string // "" any time, or one of windows
	Windows                 []windowChoice
	FeedHost                string
	Done                    string
}

type windowChoice struct{ Value, Label string }

// windows are the install times the page offers (config.Update.Window).
var windows = []windowChoice{
	{"", "Any time"},
	{"02:00-05:00", "At night, between 2 and 5 o'clock"},
	{"01:00-06:00", "At night, between 1 and 6 o'clock"},
	{"23:00-06:00", "Late evening or night, between 23 and 6 o'clock"},
}

var healthDone = map[string]string{
	"check":    "The box is looking for an update now. Reload this page in a minute to see what it found.",
	"settings": "Saved.",
	"storage":  "Saved. Older messages and files go within the hour.",
}

// bytesWord writes n for people ("1.2 GB"), as the storage forecast does.
func bytesWord(n uint64) string { return diskuse.Bytes(n) }

func durWord(d time.Duration) string {
	switch {
	case d <= 0:
		return "unknown"
	case d < 2*time.Hour:
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	default:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
}

func (u *UI) healthPage(w http.ResponseWriter, r *http.Request) {
	a := u.d.Admin
	if a.Health == nil {
		adminUnavailable(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	d := healthData{Nav: adminNav("/admin/health"), H: a.Health(ctx), Windows: windows, Done: healthDone[r.URL.Query().Get("done")]}
	h := d.H
	if h.StorageTotal > 0 {
		d.Storage = fmt.Sprintf("%s used of %s (%s free).", bytesWord(h.StorageTotal-h.StorageFree), bytesWord(h.StorageTotal), bytesWord(h.StorageFree))
	}
	if h.Database > 0 {
		d.Database = bytesWord(uint64(h.Database))
	}
	d.Growth, d.Forecast, d.Written, d.DiskWarn = diskWords(h.Disk)
	if h.MemTotal > 0 {
		d.Memory = fmt.Sprintf("%s of %s in use; the chat service uses %s.", bytesWord(h.MemTotal-h.MemAvailable), bytesWord(h.MemTotal), bytesWord(h.MemChat))
	}
	d.BoxUp, d.ChatUp = durWord(h.BoxUp), durWord(h.ChatUp)
	switch {
	case h.CertExpires.IsZero():
		d.Cert, d.CertBad = "The box has no certificate loaded.", true
	default:
		left := time.Until(h.CertExpires)
		who := "made by the box itself"
		if h.CertPublic {
			who = "from a certificate authority"
		}
		d.Cert = fmt.Sprintf("The certificate (%s) is valid until %s.", who, h.CertExpires.Local().Format("2 January 2006"))
		if h.CertExpires.Year() >= 9999 {
			d.Cert = fmt.Sprintf("The certificate (%s) does not expire.", who)
		}
		if left < 14*24*time.Hour {
			d.Cert += " That is soon: the box renews it by itself when it can; if this stays, check how members reach the box."
			d.CertBad = true
		}
	}
	d.Backup, d.BackupBad = backupWords(h.Backup)
	if u.d.Network != nil {
		if rep, err := u.d.Network.Status(ctx); err == nil {
			d.Checks = rep.Checks
		} else {
			d.NoReport = true
		}
	}
	if a.Updates != nil {
		d.U = a.Updates(ctx)
	}
	d.FeedHost = feedHost(d.U.FeedURL)
	if c, err := u.d.Config.Load(); err == nil {
		d.Auto, d.Window = c.Update.Auto, c.Update.Window
		d.KeepMessages = int(c.Archive.Retention().Hours() / 24)
		d.KeepFiles = int(c.Archive.FileRetention().Hours() / 24)
		if !knownWindow(d.Window) {
			// Set by hand in the config: offered, so saving keeps it.
			d.Windows = append([]windowChoice{{d.Window, "Between " + strings.Replace(d.Window, "-", " and ", 1)}}, windows...)
		}
	}
	u.tpl.Render(w, r, http.StatusOK, "admin-health", d)
}

func (u *UI) updateCheck(w http.ResponseWriter, r *http.Request) {
	if u.d.Admin.CheckNow == nil {
		adminUnavailable(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := u.d.Admin.CheckNow(ctx); err != nil {
		u.d.Log.Error("admin: update check", "err", err)
		page.Error(w, r, http.StatusServiceUnavailable, "The box's update service did not answer, so it cannot look for an update now. It keeps looking once a day by itself.")
		return
	}
	back(w, r, "/admin/health", "check")
}

func (u *UI) updateSettings(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	win := f.Get("window")
	auto := f.Get("auto")
	cur, err := u.d.Config.Load()
	if err != nil || !knownWindow(win) && win != cur.Update.Window || auto != "on" && auto != "off" {
		page.Error(w, r, http.StatusBadRequest, "Please choose when updates are installed. Nothing was changed.")
		return
	}
	err = u.d.Config.Update(func(c *config.Config) error {
		c.Update.Auto, c.Update.Window = auto == "on", win
		return nil
	})
	if err != nil {
		u.d.Log.Error("admin: update settings", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not save that. Nothing was changed; please try again.")
		return
	}
	back(w, r, "/admin/health", "settings")
}

// backupWords says when and where the nightly backup (or "back up now")
// last wrote a backup, and whether its last try failed since: a dead SD
// card is only survivable if the admin notices that backups stopped.
func backupWords(n Nightly) (string, bool) {
	at := func(t time.Time) string { return t.Local().Format("2 January 2006, 15:04") }
	failed := ""
	if n.Error != "" && n.Attempt.After(n.OK) {
		failed = fmt.Sprintf(" The last try (%s) failed: %s", at(n.Attempt), n.Error)
	}
	stick := ""
	if n.Stick != "" { // the USB stick as destination: what the box sees now
		stick = " " + n.Stick
	}
	if n.OK.IsZero() {
		return "No backup yet." + failed + stick, true
	}
	return fmt.Sprintf("Last backup: %s, %s (%s).%s%s", at(n.OK), n.File, bytesWord(uint64(n.Bytes)), failed, stick), failed != ""
}

// feedHost is the update address as the page shows it (the host only: the
// rest means nothing to the reader).
func feedHost(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	host, _, _ := strings.Cut(s, "/")
	return host
}

func knownWindow(w string) bool {
	for _, c := range windows {
		if c.Value == w {
			return true
		}
	}
	return false
}

// diskWords puts the storage forecast in words: how fast storage fills,
// when it is full at that rate, and how much is written to the card a day
// (what wears an SD card out).
func diskWords(r diskuse.Report) (growth, forecast, written, warn string) {
	if !r.Known {
		return "", "", "", ""
	}
	if r.Span < 24*time.Hour {
		return "", "The box needs a day of history before it can say how fast its storage fills.", "", r.Warn
	}
	over := "over the last " + diskuse.Days(r.Span)
	switch {
	case r.GrowthPerDay > 0:
		growth = fmt.Sprintf("%s more in use each day (%s).", diskuse.Bytes(uint64(r.GrowthPerDay)), over)
	default:
		growth = fmt.Sprintf("Not growing (%s).", over)
	}
	switch {
	case r.FullIn > 0 && r.FullIn < 10*365*24*time.Hour:
		forecast = fmt.Sprintf("At that rate the storage is full in about %s.", diskuse.Days(r.FullIn))
	default:
		forecast = "At that rate the storage does not fill up."
	}
	who := "to the box's storage"
	if r.Process {
		who = "by the chat service"
	}
	written = fmt.Sprintf("%s a day written %s.", diskuse.Bytes(r.WrittenPerDay), who)
	return growth, forecast, written, r.Warn
}

// storageSettings saves how long messages (members' and rooms' archives)
// and shared files are kept, and has the chat server apply it at once.
func (u *UI) storageSettings(w http.ResponseWriter, r *http.Request) {
	days := func(k string) (int, bool) {
		n, err := strconv.Atoi(strings.TrimSpace(r.PostForm.Get(k)))
		return n, err == nil && n >= 1 && n <= config.MaxRetentionDays
	}
	msgs, ok1 := days("messages")
	files, ok2 := days("files")
	if !ok1 || !ok2 {
		page.Error(w, r, http.StatusBadRequest, fmt.Sprintf("Please give a number of days from 1 to %d for both. Nothing was changed.", config.MaxRetentionDays))
		return
	}
	err := u.d.Config.Update(func(c *config.Config) error {
		c.Archive.RetentionDays, c.Archive.FileRetentionDays = msgs, files
		return nil
	})
	if err == nil && u.d.Admin.Retention != nil {
		err = u.d.Admin.Retention()
	}
	if err != nil {
		u.d.Log.Error("admin: storage settings", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not save that. Please try again.")
		return
	}
	back(w, r, "/admin/health", "storage")
}
