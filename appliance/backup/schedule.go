package backup

// The nightly backup to a USB stick: at the configured hour, a backup is
// written with WriteDir (N kept, a pulled stick leaves the earlier ones)
// into the config's destination:
//
//   - "usb" (USB): the USB stick plugged into the box, found and mounted
//     by appliance/usbstick only while the backup is written, into its
//     folder "Hearth backups" (StickFolder). This is what the box needs:
//     gokrazy mounts no removable storage, so a folder had nothing real
//     to point at there.
//   - a full path: a folder someone else mounts (a laptop's `make run`,
//     a NAS share), used as it is.
//
// The outcome goes to status/backup.json for the admin page.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/appliance/usbstick"
)

// USB is the config's backup destination (config.Backup.Dir) meaning
// "the USB stick plugged into the box".
const USB = "usb"

// StickFolder is the folder on the stick that holds the backups: a name
// a person finds on the stick from any computer, beside their own files.
const StickFolder = "Hearth backups"

// PassphraseFile holds the nightly backup's passphrase (0600). It is in
// the state directory beside the database, which holds everything else in
// the clear anyway; what the passphrase protects is the stick, which
// leaves the house. It is not part of a backup (not one of the items):
// after a restore the admin chooses it again.
func PassphraseFile(dir state.Dir) string { return filepath.Join(string(dir), "backup-passphrase") }

// SavePassphrase stores the nightly backup's passphrase.
func SavePassphrase(dir state.Dir, pw string) error {
	if len(pw) < MinPassphrase {
		return fmt.Errorf("backup: the passphrase needs at least %d characters", MinPassphrase)
	}
	return config.WriteFileAtomic(PassphraseFile(dir), []byte(pw), 0o600)
}

func loadPassphrase(dir state.Dir) (string, error) {
	b, err := os.ReadFile(PassphraseFile(dir))
	if errors.Is(err, os.ErrNotExist) {
		return "", errors.New("no passphrase chosen for the nightly backup")
	}
	return string(b), err
}

// Status is the nightly backup's last outcome.
type Status struct {
	Attempt time.Time `json:"attempt"`          // the last run
	OK      time.Time `json:"ok,omitempty"`     // the last run that wrote a backup
	File    string    `json:"file,omitempty"`   // what it wrote
	Bytes   int64     `json:"bytes,omitempty"`  // its size
	Error   string    `json:"error,omitempty"`  // why the last run failed ("" it did not)
	Copies  int       `json:"copies,omitempty"` // backups in the folder after the run
	// The USB stick of the last run that found one (destination USB).
	Stick     string `json:"stick,omitempty"`      // its label (or make) and size
	StickNote string `json:"stick_note,omitempty"` // which one of several, and why not the others
	Free      int64  `json:"free,omitempty"`       // bytes free on it after the run
}

// StatusFile is where the nightly backup reports.
func StatusFile(dir state.Dir) string { return filepath.Join(dir.Status(), "backup.json") }

// ReadStatus reads the last outcome (zero when none yet).
func ReadStatus(dir state.Dir) Status {
	var s Status
	if b, err := os.ReadFile(StatusFile(dir)); err == nil {
		json.Unmarshal(b, &s)
	}
	return s
}

// RunOnce makes the nightly backup now, as configured, and records the
// outcome. It is what the schedule calls, and the admin page's "back up
// now".
func RunOnce(src Source) Status {
	// One at a time: WriteDir deletes temporary files it finds, which
	// would be another run's (the page's "back up now" during the night).
	runMu.Lock()
	defer runMu.Unlock()
	prev := ReadStatus(src.Dir)
	st := Status{Attempt: time.Now().UTC(), OK: prev.OK, File: prev.File, Bytes: prev.Bytes}
	err := func() error {
		cfg, err := config.Load(src.Dir.Config())
		if err != nil {
			return err
		}
		if cfg.Backup.Dir == "" {
			return errors.New("no folder chosen for the nightly backup")
		}
		if cfg.Backup.Dir != USB {
			if fi, err := os.Stat(cfg.Backup.Dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("the backup folder %s is not there (is the USB stick plugged in?)", cfg.Backup.Dir)
			}
		}
		pw, err := loadPassphrase(src.Dir)
		if err != nil {
			return err
		}
		if cfg.Backup.Dir == USB {
			return runStick(&st, cfg.Backup.KeepN(), src, pw)
		}
		return runDir(&st, cfg.Backup.Dir, cfg.Backup.KeepN(), src, pw)
	}()
	if err != nil {
		st.Error = strings.TrimPrefix(err.Error(), "backup: ")
	}
	if l := src.log(); err != nil {
		l.Warn("nightly backup failed", "err", st.Error)
	} else {
		l.Info("nightly backup written", "file", st.File, "bytes", st.Bytes, "copies", st.Copies, "stick", st.Stick)
	}
	os.MkdirAll(src.Dir.Status(), 0o700)
	b, _ := json.MarshalIndent(st, "", " ")
	config.WriteFileAtomic(StatusFile(src.Dir), append(b, '\n'), 0o644)
	return st
}

var runMu sync.Mutex

// runDir writes into dir and fills in st.
func runDir(st *Status, dir string, keep int, src Source, pw string) error {
	path, _, err := WriteDir(dir, keep, src, pw)
	if err != nil {
		return err
	}
	st.OK, st.File = st.Attempt, path
	if fi, err := os.Stat(path); err == nil {
		st.Bytes = fi.Size()
	}
	list, _ := List(dir)
	st.Copies = len(list)
	return nil
}

// Sticks is where RunOnce and StickNow look for USB sticks, and
// MountDir where the stick is mounted while a backup is written (tmpfs on
// the box: a mount left by a crash is gone after a reboot, and it is not
// in the state directory a backup reads). Tests replace both.
var (
	Sticks   = usbstick.Host
	MountDir = filepath.Join(os.TempDir(), "hearth-usb")
	// mount and unmount are usbstick's; the unit tests put a plain
	// folder in place of a mount (mounting needs root), the qemu test
	// (image/usbstick_e2e_test.go) runs the real ones.
	mount   = usbstick.Mount
	unmount = (*usbstick.Mounted).Unmount
)

// runStick finds the USB stick, mounts it, writes into StickFolder,
// unmounts it and fills in st.
func runStick(st *Status, keep int, src Source, pw string) (err error) {
	found, err := Sticks.Find()
	if err != nil {
		return fmt.Errorf("looking for a USB stick: %w", err)
	}
	s, note, err := usbstick.Choose(found)
	if err != nil {
		return err
	}
	st.Stick, st.StickNote = s.String(), note
	m, err := mount(s, MountDir)
	if err != nil {
		return err
	}
	var ok Status
	defer func() {
		if uerr := unmount(m); uerr != nil && err == nil {
			// The backup is not known to be on the stick until its
			// file system was synced: not a success.
			err = uerr
		}
		if err == nil {
			st.OK, st.File, st.Bytes, st.Copies, st.Free = ok.OK, ok.File, ok.Bytes, ok.Copies, ok.Free
		}
	}()
	dir := filepath.Join(m.Dir, StickFolder)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return stickError(s, err, 0)
	}
	ok.Attempt = st.Attempt
	werr := runDir(&ok, dir, keep, src, pw)
	free, _, ferr := m.Free()
	if ferr == nil {
		st.Free = free
		ok.Free = free
	}
	if werr != nil {
		return stickError(s, werr, free)
	}
	// What a person finds on the stick, not where the box mounted it.
	if rel, err := filepath.Rel(m.Dir, ok.File); err == nil {
		ok.File = rel
	}
	return nil
}

// stickError says in plain words what went wrong writing to stick s.
// The detail is the system's own word for it (input/output error), not
// the wrapped error's paths: where the box mounted the stick means
// nothing to the reader. errors.Is still sees the cause.
func stickError(s usbstick.Stick, err error, free int64) error {
	detail := err
	var errno syscall.Errno
	if errors.As(err, &errno) {
		detail = errno
	}
	var words string
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		words = fmt.Sprintf("the USB stick %s is full (%s free); the earlier backups on it are kept. Use a larger stick, delete other files from it, or keep fewer backups", s, usbstick.Bytes(free))
	case errors.Is(err, syscall.EFBIG):
		words = fmt.Sprintf("the backup is larger than 4 GB, the most one file on a FAT32 stick can hold; format the stick %s as exFAT or ext4 on a computer", s)
	case errors.Is(err, syscall.EROFS):
		words = usbstick.ErrReadOnly.Error()
	case errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO):
		words = fmt.Sprintf("the USB stick %s was pulled out while the backup was written (or it is failing); the earlier backups on it are kept", s)
	default:
		words = fmt.Sprintf("writing to the USB stick %s failed", s)
	}
	return &stickErr{words: words, detail: detail, err: err}
}

type stickErr struct {
	words  string
	detail error
	err    error
}

func (e *stickErr) Error() string { return e.words + " (" + e.detail.Error() + ")" }
func (e *stickErr) Unwrap() error { return e.err }

// StickNow says in plain words which USB stick the box sees now (for
// the admin page), without mounting it.
func StickNow() string {
	found, err := Sticks.Find()
	if err != nil {
		return "The box could not look for USB sticks: " + err.Error()
	}
	s, note, err := usbstick.Choose(found)
	if err != nil {
		return upper(err.Error()) + "."
	}
	if note != "" {
		return note
	}
	return "USB stick plugged in: " + s.String() + "."
}

func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// nextRun is the next time at hour (local) after now.
func nextRun(now time.Time, hour int) time.Time {
	t := time.Date(now.Year(), now.Month(), now.Day(), hour, 0, 0, 0, now.Location())
	if !t.After(now) {
		t = t.AddDate(0, 0, 1)
	}
	return t
}

// Schedule runs RunOnce every day at the configured hour until stop is
// closed. The hour is read again each day (the admin page changes it).
// It wakes every minute rather than sleeping a day: a Pi without a
// battery clock learns the time after boot, and the wall clock can jump.
//
// With the USB stick as destination it also catches up: when the last
// backup is more than a day old (or there is none) and a usable stick is
// plugged in, it runs at once, so a stick plugged in at noon holds a
// backup within a minute rather than after the night. A run that failed
// is not repeated for the same sticks until catchUpRetry has passed (a
// full stick must not be written to every minute); plugging in another
// stick tries again at once.
func Schedule(stop <-chan struct{}, src Source) {
	var due time.Time
	var tried string // the sticks seen at the last catch-up try
	var triedAt time.Time
	for {
		now := time.Now()
		cfg, _ := config.Load(src.Dir.Config())
		hour := 3
		if cfg != nil {
			hour = cfg.Backup.HourOfDay()
		}
		if due.IsZero() || due.Hour() != hour || due.Sub(now) > 25*time.Hour {
			due = nextRun(now, hour)
		}
		switch {
		case !now.Before(due):
			if cfg != nil && cfg.Backup.Dir != "" {
				RunOnce(src)
			}
			due = nextRun(time.Now(), hour)
		case cfg != nil && cfg.Backup.Dir == USB:
			// Sticks are looked for (their first bytes read) only while
			// a backup is overdue, not every minute of every day.
			if st := ReadStatus(src.Dir); overdue(st, now) {
				seen := stickKey()
				if catchUp(st, now, seen, tried, triedAt) {
					tried, triedAt = seen, now
					RunOnce(src)
				}
			}
		}
		select {
		case <-stop:
			return
		case <-time.After(min(time.Until(due), scheduleTick)):
		}
	}
}

// scheduleTick is how often Schedule looks (for the hour and for sticks).
var scheduleTick = time.Minute

// catchUpRetry is how long a failed catch-up waits before trying the
// same sticks again.
const catchUpRetry = 6 * time.Hour

// stickKey names the usable sticks plugged in now ("" none).
func stickKey() string {
	found, _ := Sticks.Find()
	var k []string
	for _, s := range found {
		if s.Usable() {
			k = append(k, s.Port+"="+s.Dev+"="+s.Label)
		}
	}
	return strings.Join(k, ",")
}

// catchUp decides whether Schedule runs a backup now, outside the hour.
func catchUp(st Status, now time.Time, seen, tried string, triedAt time.Time) bool {
	if seen == "" || !overdue(st, now) {
		return false
	}
	return seen != tried || now.Sub(triedAt) >= catchUpRetry
}

// overdue: no backup in the last day (one dated in the future, after the
// clock was set back, counts as old).
func overdue(st Status, now time.Time) bool {
	return now.Sub(st.OK) >= 24*time.Hour || st.OK.After(now)
}
