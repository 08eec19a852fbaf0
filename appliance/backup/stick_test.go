package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/appliance/usbstick"
)

// These tests put a plain folder where the stick would be mounted:
// mounting needs root and a block device. The real mount, syncfs and
// unmount on a real FAT32 stick, a stick pulled and plugged back and a
// full stick run in qemu: image/usbstick_e2e_test.go.

// fakeMachine is a fake sysfs, /proc and /dev that Sticks points at,
// with "mounting" done by using folder; plug and unplug change the
// files only (Schedule's goroutine reads Sticks meanwhile).
type fakeMachine struct {
	t          *testing.T
	sy         usbstick.System
	dev        string
	unmountErr error
}

func fakeStick(t *testing.T, folder string) *fakeMachine {
	t.Helper()
	root := t.TempDir()
	m := &fakeMachine{t: t, sy: usbstick.System{Sys: filepath.Join(root, "sys"), Proc: filepath.Join(root, "proc"), Dev: filepath.Join(root, "dev")},
		dev: "devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host0/target0:0:0/0:0:0:0/block/sda"}
	for _, d := range []string{filepath.Join(m.sy.Sys, m.dev), filepath.Join(m.sy.Sys, "block"), m.sy.Proc, m.sy.Dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(m.sy.Proc, "filesystems"), []byte("nodev\tsysfs\n\tvfat\n"), 0o644)
	oldSticks, oldMount, oldUnmount := Sticks, mount, unmount
	Sticks = m.sy
	mount = func(s usbstick.Stick, dir string) (*usbstick.Mounted, error) {
		if !s.Usable() {
			return nil, errors.New(usbstick.Problem(s, ""))
		}
		return &usbstick.Mounted{Stick: s, Dir: folder}, nil
	}
	unmount = func(*usbstick.Mounted) error { return m.unmountErr }
	t.Cleanup(func() { Sticks, mount, unmount = oldSticks, oldMount, oldUnmount })
	return m
}

// plug puts in a 64 MiB stick with a FAT32 boot sector labelled label
// (ro: write-protected).
func (m *fakeMachine) plug(label string, ro bool) {
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			m.t.Fatal(err)
		}
	}
	write(filepath.Join(m.sy.Sys, m.dev, "size"), []byte("131072\n"))
	write(filepath.Join(m.sy.Sys, m.dev, "ro"), []byte(map[bool]string{true: "1\n", false: "0\n"}[ro]))
	boot := make([]byte, 4096)
	copy(boot[0x47:], fmt.Sprintf("%-11s", label))
	copy(boot[0x52:], "FAT32   ")
	boot[510], boot[511] = 0x55, 0xAA
	write(filepath.Join(m.sy.Dev, "sda"), boot)
	// The symlink last: Find sees a complete disk or none.
	os.Symlink(filepath.Join("..", m.dev), filepath.Join(m.sy.Sys, "block", "sda"))
}

// TestRunOnceUSB: with the stick as destination the backup lands in
// "Hearth backups" on it, the status names the stick, the file as a
// person finds it on the stick and the space left; no stick, a
// write-protected one and a stick pulled before its file system was
// synced (unmount fails) each fail with words and keep the last good
// backup's record; the next run works again.
func TestRunOnceUSB(t *testing.T) {
	dir := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	box(t, dir, "club.example", "old", "anna")
	src := source(t, dir, "club.example")
	c, _ := config.Load(dir.Config())
	c.Backup = config.Backup{Dir: USB, Keep: 2}
	config.Save(dir.Config(), c)
	if err := SavePassphrase(dir, pass); err != nil {
		t.Fatal(err)
	}
	folder := t.TempDir()

	m := fakeStick(t, folder)
	if st := RunOnce(src); st.Error != "no USB stick is plugged in" || !st.OK.IsZero() {
		t.Fatalf("no stick: %+v", st)
	}
	if got := StickNow(); got != "No USB stick is plugged in." {
		t.Errorf("StickNow without a stick: %q", got)
	}

	m.plug("HEARTH", true)
	if st := RunOnce(src); !strings.Contains(st.Error, `the USB stick "HEARTH" (67.1 MB) is read-only`) {
		t.Fatalf("write-protected: %+v", st)
	}

	m.plug("HEARTH", false)
	if got := StickNow(); got != `USB stick plugged in: "HEARTH" (67.1 MB).` {
		t.Errorf("StickNow: %q", got)
	}
	src.Now = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	st := RunOnce(src)
	want := filepath.Join(StickFolder, FileName("club.example", src.Now))
	if st.Error != "" || st.File != want || st.Copies != 1 || st.Stick != `"HEARTH" (67.1 MB)` || st.Free <= 0 || st.OK.IsZero() {
		t.Fatalf("first backup: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(folder, want)); err != nil {
		t.Fatalf("the backup is not in %s on the stick: %v", StickFolder, err)
	}
	good := st

	m.unmountErr = errors.New("the USB stick \"HEARTH\" (67.1 MB) could not be written to the end (pulled out?): input/output error")
	src.Now = src.Now.AddDate(0, 0, 1)
	st = RunOnce(src)
	if !strings.Contains(st.Error, "pulled out") || !st.OK.Equal(good.OK) || st.File != good.File {
		t.Fatalf("stick pulled before the sync: %+v", st)
	}
	m.unmountErr = nil
	src.Now = src.Now.AddDate(0, 0, 1)
	if st = RunOnce(src); st.Error != "" || st.Copies != 2 || !st.OK.After(good.OK) {
		t.Fatalf("the night after: %+v", st)
	}
}

// TestStickErrors: what a failed write to the stick says.
func TestStickErrors(t *testing.T) {
	s := usbstick.Stick{Label: "HEARTH", Size: 8e9}
	for errno, want := range map[syscall.Errno]string{
		syscall.ENOSPC: `the USB stick "HEARTH" (8.0 GB) is full (12 kB free); the earlier backups on it are kept`,
		syscall.EFBIG:  "larger than 4 GB",
		syscall.EROFS:  "read-only",
		syscall.EIO:    "was pulled out while the backup was written",
	} {
		err := stickError(s, fmt.Errorf("backup: writing to /x: %w", &os.PathError{Op: "write", Path: "/x", Err: errno}), 12e3)
		if !strings.Contains(err.Error(), want) || !errors.Is(err, errno) || strings.Contains(err.Error(), "/x") || !strings.HasSuffix(err.Error(), "("+errno.Error()+")") {
			t.Errorf("%v: %v, want %q and the errno's words, not the path", errno, err, want)
		}
	}
}

// TestCatchUp: a stick plugged in after a day without a backup gets one
// at once; a recent backup, no stick, or a failed try with the same
// sticks (until catchUpRetry) does not run again.
func TestCatchUp(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, c := range []struct {
		name        string
		ok          time.Time
		seen, tried string
		triedAt     time.Time
		want        bool
	}{
		{"never backed up, stick in", time.Time{}, "a", "", time.Time{}, true},
		{"no stick", time.Time{}, "", "", time.Time{}, false},
		{"backed up last night", now.Add(-9 * time.Hour), "a", "", time.Time{}, false},
		{"two days ago", now.Add(-2 * day), "a", "", time.Time{}, true},
		{"failed with this stick an hour ago", now.Add(-2 * day), "a", "a", now.Add(-time.Hour), false},
		{"another stick since", now.Add(-2 * day), "b", "a", now.Add(-time.Hour), true},
		{"failed long ago", now.Add(-2 * day), "a", "a", now.Add(-catchUpRetry), true},
		{"clock set back", now.Add(day), "a", "", time.Time{}, true},
	} {
		if got := catchUp(Status{OK: c.ok}, now, c.seen, c.tried, c.triedAt); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestSchedulePlugIn: Schedule with the stick as destination writes a
// backup soon after a stick appears, outside the nightly hour.
func TestSchedulePlugIn(t *testing.T) {
	dir := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	box(t, dir, "club.example", "old", "anna")
	src := source(t, dir, "club.example")
	c, _ := config.Load(dir.Config())
	hour := (time.Now().Hour() + 12) % 24 // far from now
	c.Backup = config.Backup{Dir: USB, Hour: &hour}
	config.Save(dir.Config(), c)
	SavePassphrase(dir, pass)
	folder := t.TempDir()
	m := fakeStick(t, folder)
	old := scheduleTick
	scheduleTick = 20 * time.Millisecond
	defer func() { scheduleTick = old }()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { Schedule(stop, src); close(done) }()
	defer func() { close(stop); <-done }()
	time.Sleep(100 * time.Millisecond) // a few ticks without a stick: nothing may run
	if st := ReadStatus(dir); !st.Attempt.IsZero() {
		t.Fatalf("ran without a stick: %+v", st)
	}
	m.plug("HEARTH", false)
	deadline := time.Now().Add(30 * time.Second)
	for ReadStatus(dir).OK.IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("no backup 30 s after the stick was plugged in: %+v", ReadStatus(dir))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if list, _ := List(filepath.Join(folder, StickFolder)); len(list) != 1 {
		t.Fatalf("on the stick: %v", list)
	}
}
