// Package clock keeps the wall clock of a box without a battery clock
// plausible. A Raspberry Pi starts every boot at 1970-01-01 and learns the
// time from NTP later, or never (a home-network-only box may have no
// internet). xmppd then made its self-signed certificate in 1970 (valid
// until 1980, expired as soon as NTP set the time; found by booting the Pi
// image on an emulated Pi 3 B), and anything else that reads the date at
// boot sees 1970.
//
// What Debian's fake-hwclock does: at boot the clock is raised to at least
// the time saved on /perm (STATE/clock) and the image's build time; while the
// box runs the time is saved again hourly, soon after the clock jumps (NTP
// set it) and at shutdown, so the next boot starts no earlier than the last
// time this box knew. The clock is only ever raised here, never lowered: a
// later NTP answer is the authority.
package clock

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hearthchat/hearth/appliance/version"
)

// Epoch is the earliest time any Hearth build can run at: no firmware was
// built before it. It is the floor when the build time was not stamped
// (local builds), so a raised clock is never 1970 either way.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// BuildTime is when the image was built (version.BuildTime, stamped by the
// image build), or Epoch when it was not stamped or cannot be read.
func BuildTime() time.Time {
	if s := version.BuildTime; s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			if t := time.Unix(n, 0).UTC(); t.After(Epoch) {
				return t
			}
		}
	}
	return Epoch
}

// OnAppliance reports whether this program runs on a gokrazy root file
// system, where it may and must set the clock. Under `make run` (a laptop,
// not root, a clock that is right) nothing here touches the clock.
func OnAppliance() bool {
	_, err := os.Stat("/gokrazy/init")
	return err == nil
}

// Keeper raises and saves the clock. The zero values of Now, Set and Build
// are the real clock, settimeofday and BuildTime; tests inject their own.
type Keeper struct {
	Path  string           // the saved time (state.Dir.Clock)
	Build time.Time        // the image's build time
	Now   func() time.Time // the wall clock
	Set   func(time.Time) error
	Log   *slog.Logger
}

// New returns a Keeper for the real clock saving to path.
func New(path string, log *slog.Logger) *Keeper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Keeper{Path: path, Build: BuildTime(), Now: time.Now, Set: settimeofday, Log: log}
}

// Floor is the earliest time the clock may show: the later of the build
// time and the saved time. A missing or unreadable file is no floor (an
// SD card written by a crash must not keep the box from starting).
func (k *Keeper) Floor() time.Time {
	floor := k.Build
	if saved, err := k.Saved(); err == nil && saved.After(floor) {
		floor = saved
	}
	return floor
}

// Saved reads the time saved by Save.
func (k *Keeper) Saved() (time.Time, error) {
	b, err := os.ReadFile(k.Path)
	if err != nil {
		return time.Time{}, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("clock: %s: %w", k.Path, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// Raise sets the clock to the floor if it is behind it and reports whether
// it did. Every program gokrazy starts calls it first (they start at the
// same moment, in no fixed order); the first one raises the clock, the
// others find it raised.
func (k *Keeper) Raise() (bool, error) {
	floor := k.Floor()
	now := k.Now()
	if !now.Before(floor) {
		return false, nil
	}
	if err := k.Set(floor); err != nil {
		return false, fmt.Errorf("clock: raise from %s to %s: %w", now.UTC().Format(time.RFC3339), floor.Format(time.RFC3339), err)
	}
	k.Log.Info("clock raised (no battery clock)", "from", now.UTC().Format(time.RFC3339), "to", floor.Format(time.RFC3339))
	return true, nil
}

// Plausible reports whether the clock can be right: not before the build
// time. Only a plausible time is saved, so a box whose clock could not be
// raised never records 1970 as the floor.
func (k *Keeper) Plausible() bool {
	return !k.Now().Before(k.Build)
}

// Save writes the current time as the next boot's floor, if plausible.
// Whole seconds in a small file replaced by rename, so a power cut leaves
// the old floor or the new one, never a torn one.
func (k *Keeper) Save() error {
	if !k.Plausible() {
		return nil
	}
	now := k.Now().Unix()
	if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
		return fmt.Errorf("clock: save: %w", err)
	}
	tmp := k.Path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("clock: save: %w", err)
	}
	_, werr := fmt.Fprintf(f, "%d\n", now)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, k.Path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("clock: save: %w", werr)
	}
	return nil
}

// How often Run saves: hourly spares the SD card (24 small writes a day) and
// loses at most an hour of clock on a power cut. A jump of the wall clock
// against the monotonic clock (NTP set the time) is saved at the next check.
const (
	SaveEvery  = time.Hour
	checkEvery = time.Minute
	jumpSlack  = 30 * time.Second
)

// Run saves the time every SaveEvery and soon after the clock jumps, until
// stop is closed, then saves once more (shutdown). tick is the check
// interval (checkEvery when zero; tests pass a short one).
func (k *Keeper) Run(stop <-chan struct{}, tick time.Duration) {
	if tick <= 0 {
		tick = checkEvery
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	// last carries a monotonic reading (time.Now), wall the wall clock as
	// k.Now reports it: their difference growing means the clock was set.
	// Round(0) strips the monotonic reading, without which Sub would
	// compare monotonic readings and never see a jump (found on the
	// emulated Pi: the jump NTP made was not saved).
	last, lastWall := time.Now(), k.Now().Round(0)
	savedAt := last
	save := func(why string) {
		if err := k.Save(); err != nil {
			k.Log.Warn("clock not saved", "why", why, "err", err)
		}
		savedAt = time.Now()
	}
	for {
		select {
		case <-stop:
			save("shutdown")
			return
		case <-t.C:
		}
		mono, wall := time.Now(), k.Now().Round(0)
		elapsed, wallElapsed := mono.Sub(last), wall.Sub(lastWall)
		last, lastWall = mono, wall
		if d := wallElapsed - elapsed; d > jumpSlack || d < -jumpSlack {
			k.Log.Info("clock jumped", "by", d.Round(time.Second).String(), "now", wall.UTC().Format(time.RFC3339))
			save("jump")
			continue
		}
		if mono.Sub(savedAt) >= SaveEvery {
			save("hourly")
		}
	}
}

// Boot raises the clock from the floor saved in path when running on the
// appliance; elsewhere it does nothing and returns nil. Programs call it
// before anything reads the date.
func Boot(path string, log *slog.Logger) *Keeper {
	if !OnAppliance() {
		return nil
	}
	k := New(path, log)
	if _, err := k.Raise(); err != nil {
		k.Log.Error("clock", "err", err)
	}
	return k
}

// settimeofday sets the wall clock (root only; gokrazy runs our programs as
// root).
func settimeofday(t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	return unix.Settimeofday(&tv)
}
