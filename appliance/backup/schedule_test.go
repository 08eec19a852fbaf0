package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
)

// TestRunOnce: the nightly backup says why it did not run (no stick, no
// passphrase), writes into the configured folder when it can, keeps the
// configured number, and reports in status/backup.json.
func TestRunOnce(t *testing.T) {
	dir := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	box(t, dir, "club.example", "old", "anna")
	src := source(t, dir, "club.example")
	stick := filepath.Join(t.TempDir(), "stick")
	update := func(f func(*config.Config)) {
		c, _ := config.Load(dir.Config())
		f(c)
		config.Save(dir.Config(), c)
	}
	if st := RunOnce(src); !strings.Contains(st.Error, "no folder") {
		t.Fatalf("unconfigured: %+v", st)
	}
	update(func(c *config.Config) { c.Backup = config.Backup{Dir: stick, Keep: 2} })
	if st := RunOnce(src); !strings.Contains(st.Error, "USB stick") {
		t.Fatalf("stick missing: %+v", st)
	}
	os.Mkdir(stick, 0o700)
	if st := RunOnce(src); !strings.Contains(st.Error, "passphrase") {
		t.Fatalf("no passphrase: %+v", st)
	}
	if err := SavePassphrase(dir, "short"); err == nil {
		t.Fatal("short passphrase saved")
	}
	if err := SavePassphrase(dir, pass); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		src.Now = time.Date(2026, 12, 1+i, 3, 0, 0, 0, time.UTC) // one file name each
		st := RunOnce(src)
		if st.Error != "" || st.OK.IsZero() || st.Bytes == 0 || st.Copies != min(i+1, 2) {
			t.Fatalf("run %d: %+v", i, st)
		}
	}
	if st := ReadStatus(dir); st.Error != "" || !strings.HasPrefix(st.File, stick) {
		t.Fatalf("status file: %+v", st)
	}
	// The stick pulled: the failure is reported, the last good backup kept.
	os.RemoveAll(stick)
	st := RunOnce(src)
	if st.Error == "" || st.OK.IsZero() || st.File == "" {
		t.Fatalf("after the stick was pulled: %+v", st)
	}
	// The passphrase is not in the backup.
	if inItems("backup-passphrase") {
		t.Fatal("the passphrase file is backed up")
	}
}

func TestNextRun(t *testing.T) {
	loc := time.FixedZone("x", 3600)
	for _, c := range []struct{ now, want string }{
		{"2026-12-07T02:59:00", "2026-12-07T03:00:00"},
		{"2026-12-07T03:00:00", "2026-12-08T03:00:00"},
		{"2026-12-07T23:00:00", "2026-12-08T03:00:00"},
	} {
		now, _ := time.ParseInLocation("2006-01-02T15:04:05", c.now, loc)
		want, _ := time.ParseInLocation("2006-01-02T15:04:05", c.want, loc)
		if got := nextRun(now, 3); !got.Equal(want) {
			t.Errorf("nextRun(%s) = %s, want %s", c.now, got, c.want)
		}
	}
}
