package clock

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/version"
)

// fakeClock is a settable wall clock.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	sets  []time.Time
	reads int
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	return c.t
}

func (c *fakeClock) Reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

func (c *fakeClock) Set(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
	c.sets = append(c.sets, t)
	return nil
}

func keeper(t *testing.T, now, build time.Time) (*Keeper, *fakeClock) {
	c := &fakeClock{t: now}
	return &Keeper{
		Path: filepath.Join(t.TempDir(), "clock"), Build: build,
		Now: c.Now, Set: c.Set, Log: slog.New(slog.DiscardHandler),
	}, c
}

var (
	boot1970 = time.Unix(12, 0).UTC() // a Pi 12 s after power-on
	build    = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
)

// A Pi boots at 1970: the clock goes to the build time when nothing was
// saved, and to the saved time when that is later.
func TestRaiseToBuildTimeThenSavedTime(t *testing.T) {
	k, c := keeper(t, boot1970, build)
	raised, err := k.Raise()
	if err != nil || !raised || !c.Now().Equal(build) {
		t.Fatalf("Raise = %v, %v; clock %v, want the build time %v", raised, err, c.Now(), build)
	}

	saved := build.Add(400 * 24 * time.Hour)
	if err := os.WriteFile(k.Path, []byte("  "+itoa(saved.Unix())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.t = boot1970
	if raised, err := k.Raise(); err != nil || !raised || !c.Now().Equal(saved) {
		t.Fatalf("Raise = %v, %v; clock %v, want the saved time %v", raised, err, c.Now(), saved)
	}
}

// A clock already past the floor (NTP was faster, or a laptop) is never
// lowered, and an older saved time does not lower the build-time floor.
func TestRaiseNeverLowers(t *testing.T) {
	now := build.Add(48 * time.Hour)
	k, c := keeper(t, now, build)
	os.WriteFile(k.Path, []byte(itoa(build.Add(-time.Hour).Unix())), 0o644)
	if raised, err := k.Raise(); err != nil || raised || len(c.sets) != 0 {
		t.Fatalf("Raise = %v, %v, sets %v: a clock ahead of the floor was set", raised, err, c.sets)
	}
	if f := k.Floor(); !f.Equal(build) {
		t.Fatalf("Floor = %v, want the build time %v (saved time is older)", f, build)
	}
}

// A torn or garbage file (power cut while an old version wrote it) is no
// floor, not an error that keeps the programs from starting.
func TestRaiseIgnoresGarbage(t *testing.T) {
	k, c := keeper(t, boot1970, build)
	os.WriteFile(k.Path, []byte("17\x00\x00"), 0o644)
	if raised, err := k.Raise(); err != nil || !raised || !c.Now().Equal(build) {
		t.Fatalf("Raise = %v, %v; clock %v, want %v", raised, err, c.Now(), build)
	}
}

// 1970 is never saved (a box whose clock could not be raised must not
// record it), a plausible time is, and the saved time is the next floor.
func TestSaveOnlyPlausible(t *testing.T) {
	k, c := keeper(t, boot1970, build)
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(k.Path); !os.IsNotExist(err) {
		t.Fatalf("1970 saved: %v", err)
	}
	c.t = build.Add(90 * 24 * time.Hour)
	if err := k.Save(); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Saved(); err != nil || !got.Equal(c.t.Truncate(time.Second)) {
		t.Fatalf("Saved = %v, %v, want %v", got, err, c.t)
	}
	if f := k.Floor(); !f.Equal(c.t) {
		t.Fatalf("Floor = %v, want %v", f, c.t)
	}
	if _, err := os.Stat(k.Path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
}

// Run saves soon after the wall clock jumps against the monotonic clock
// (NTP set it), without waiting for the hourly save, and once more at
// shutdown.
func TestRunSavesAfterJumpAndAtShutdown(t *testing.T) {
	k, c := keeper(t, build, build)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { k.Run(stop, 5*time.Millisecond); close(done) }()
	// Jump only once Run has read the clock before it (its start and a
	// first check).
	for c.Reads() < 2 {
		time.Sleep(time.Millisecond)
	}

	jumped := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	c.Set(jumped)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, err := k.Saved(); err == nil && got.Equal(jumped) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the jump to 2031 was not saved within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}

	later := jumped.Add(10 * time.Second) // within the slack: no jump
	c.Set(later)
	close(stop)
	<-done
	if got, err := k.Saved(); err != nil || !got.Equal(later) {
		t.Fatalf("after shutdown Saved = %v, %v, want %v", got, err, later)
	}
}

func TestBuildTime(t *testing.T) {
	old := version.BuildTime
	defer func() { version.BuildTime = old }()
	for _, tc := range []struct {
		stamp string
		want  time.Time
	}{
		{"", Epoch},
		{"garbage", Epoch},
		{"12", Epoch}, // 1970 is no build time
		{itoa(build.Unix()), build},
	} {
		version.BuildTime = tc.stamp
		if got := BuildTime(); !got.Equal(tc.want) {
			t.Errorf("BuildTime with %q = %v, want %v", tc.stamp, got, tc.want)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
