package backup

// The nightly backup to a USB stick: at the configured hour, if the
// config names a folder and it is there (the stick is plugged in and
// mounted), a backup is written into it with WriteDir (N kept, a pulled
// stick leaves the earlier ones). The outcome goes to status/backup.json
// for the admin page.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
)

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
		if fi, err := os.Stat(cfg.Backup.Dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("the backup folder %s is not there (is the USB stick plugged in?)", cfg.Backup.Dir)
		}
		pw, err := loadPassphrase(src.Dir)
		if err != nil {
			return err
		}
		path, _, err := WriteDir(cfg.Backup.Dir, cfg.Backup.KeepN(), src, pw)
		if err != nil {
			return err
		}
		st.OK, st.File = st.Attempt, path
		if fi, err := os.Stat(path); err == nil {
			st.Bytes = fi.Size()
		}
		list, _ := List(cfg.Backup.Dir)
		st.Copies = len(list)
		return nil
	}()
	if err != nil {
		st.Error = strings.TrimPrefix(err.Error(), "backup: ")
	}
	os.MkdirAll(src.Dir.Status(), 0o700)
	b, _ := json.MarshalIndent(st, "", " ")
	config.WriteFileAtomic(StatusFile(src.Dir), append(b, '\n'), 0o644)
	return st
}

var runMu sync.Mutex

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
// It wakes at least every 10 minutes rather than sleeping a day: a Pi
// without a battery clock learns the time after boot, and the wall clock
// can jump.
func Schedule(stop <-chan struct{}, src Source) {
	var due time.Time
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
		if !now.Before(due) {
			if cfg != nil && cfg.Backup.Dir != "" {
				RunOnce(src)
			}
			due = nextRun(time.Now(), hour)
		}
		select {
		case <-stop:
			return
		case <-time.After(min(time.Until(due), 10*time.Minute)):
		}
	}
}
