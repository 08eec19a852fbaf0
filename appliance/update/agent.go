package update

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
)

// Trial is the persisted record of a release booted on trial.
type Trial struct {
	Release   int       `json:"release"`
	Version   string    `json:"version"`
	Installed time.Time `json:"installed"`
	// Booted is set by the new version on its first start, so a restarted
	// agent keeps the original health deadline.
	Booted time.Time `json:"booted,omitzero"`
	// BootedUptime is the kernel's uptime (CLOCK_BOOTTIME) at Booted: the
	// health deadline is measured on it, not on the wall clock. A Pi has
	// no battery clock and NTP often first answers during the trial: on
	// the wall clock a jump forward expired the deadline at once (a
	// healthy release rolled back) and a jump back put it off for as long
	// (a broken one kept). A trial lives within one boot, so a restarted
	// agent's uptime is comparable.
	BootedUptime time.Duration `json:"booted_uptime,omitzero"`
}

// uptime is the time since the kernel booted, suspend included; it never
// jumps when the wall clock is set.
func uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Status is what the agent reports: in dir/status/update.json, on its admin
// socket and in the log.
type Status struct {
	Version   string    `json:"version"`
	Release   int       `json:"release"`
	State     string    `json:"state"` // idle, checking, downloading, installing, trial, error
	Message   string    `json:"message"`
	LastCheck time.Time `json:"last_check,omitzero"`
	Available *Custom   `json:"available,omitempty"`
	// LastResult is the outcome of the last install: "committed release 3"
	// or "rolled back release 3: …".
	LastResult string    `json:"last_result,omitempty"`
	Time       time.Time `json:"time"`
}

// Agent runs on the box.
type Agent struct {
	State   state.Dir
	Client  *Client
	Gokrazy *Gokrazy
	Boot    *BootConfig
	// Health reports nil when the running xmppd (of this version) passes
	// its health gate.
	Health  func(ctx context.Context) error
	Version string // appliance/version.Version of this build
	Release int    // its release number (0 for dev builds)
	Log     *slog.Logger
	// Console, if set, also gets each status change as one line. On the
	// box it is /dev/kmsg, so updates show on the serial console and in
	// the kernel log next to the boot messages they cause.
	Console io.Writer

	mu      sync.Mutex
	status  Status
	trigger chan struct{}
	// committed is set when this boot committed a trial. gokrazy decided
	// which partition is "inactive" when it started, from cmdline.txt,
	// which then still named the old root: until the next boot its update
	// API would write over the root we are running from.
	committed bool
}

func (a *Agent) dir() string { return a.State.Update() }

func (a *Agent) setStatus(st, msg string) {
	a.mu.Lock()
	a.status.Version, a.status.Release = a.Version, a.Release
	a.status.State, a.status.Message, a.status.Time = st, msg, time.Now().UTC()
	s := a.status
	a.mu.Unlock()
	a.Log.Info("update: "+msg, "state", st)
	if a.Console != nil {
		fmt.Fprintf(a.Console, "<5>hearth-updater: %s: %s\n", st, msg)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	os.MkdirAll(a.State.Status(), 0o700)
	if err := config.WriteFileAtomic(filepath.Join(a.State.Status(), "update.json"), append(b, '\n'), 0o644); err != nil {
		a.Log.Warn("update: write status", "err", err)
	}
}

func (a *Agent) setResult(r string) {
	a.mu.Lock()
	a.status.LastResult = r
	a.mu.Unlock()
}

// Status returns the current status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

func (a *Agent) loadTrial() (*Trial, error) {
	b, err := os.ReadFile(filepath.Join(a.dir(), "trial.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var t Trial
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("update: trial.json: %w", err)
	}
	return &t, nil
}

func (a *Agent) saveTrial(t *Trial) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.dir(), 0o700); err != nil {
		return err
	}
	return config.WriteFileAtomic(filepath.Join(a.dir(), "trial.json"), b, 0o600)
}

func (a *Agent) endTrial(result string) {
	a.setResult(result)
	if err := os.Remove(filepath.Join(a.dir(), "trial.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.Log.Error("update: remove trial record", "err", err)
	}
	b, _ := json.Marshal(map[string]any{"result": result, "time": time.Now().UTC()})
	config.WriteFileAtomic(filepath.Join(a.dir(), "last-result.json"), b, 0o600)
}

// markFailed remembers a release that was rolled back.
func (a *Agent) markFailed(release int) {
	b, _ := json.Marshal(map[string]int{"release": release})
	if err := config.WriteFileAtomic(filepath.Join(a.dir(), "failed.json"), b, 0o600); err != nil {
		a.Log.Error("update: remember failed release", "err", err)
	}
}

func (a *Agent) failedRelease() int {
	var f struct{ Release int }
	b, err := os.ReadFile(filepath.Join(a.dir(), "failed.json"))
	if err != nil || json.Unmarshal(b, &f) != nil {
		return 0
	}
	return f.Release
}

// ResolveTrial settles an install that was booted on trial: it commits the
// new release once healthy, or rolls back. It returns once nothing is left
// to decide (or after asking for a reboot).
func (a *Agent) ResolveTrial(ctx context.Context, healthTimeout time.Duration) error {
	if b, err := os.ReadFile(filepath.Join(a.dir(), "last-result.json")); err == nil {
		var r struct{ Result string }
		if json.Unmarshal(b, &r) == nil {
			a.setResult(r.Result)
		}
	}
	t, err := a.loadTrial()
	if err != nil {
		return err
	}
	flag, err := a.Boot.TrialState()
	if err != nil {
		return err
	}
	if t == nil {
		if flag != "" {
			// A flag without a record (e.g. a record lost to a crash before
			// it was written): never leave the box trying a root we did not
			// verify.
			a.setStatus("idle", "removing a stray trial flag from cmdline.txt")
			return a.Boot.ClearTrial()
		}
		return nil
	}
	switch {
	case flag == "pending":
		// Installed, but the reboot into the trial did not happen yet.
		a.setStatus("trial", fmt.Sprintf("release %d installed, rebooting into its trial", t.Release))
		return a.Gokrazy.Reboot(ctx)

	case t.Release != a.Release:
		// We are the old version: the trial boot ended without committing
		// (a crash, a hang and a watchdog reset, or a power cut).
		if err := a.Boot.ClearTrial(); err != nil {
			return err
		}
		a.markFailed(t.Release)
		res := fmt.Sprintf("rolled back release %d: it did not pass its health gate before the box restarted; running release %d", t.Release, a.Release)
		a.endTrial(res)
		a.setStatus("idle", res)
		return nil
	}

	// We are the new version, on trial.
	if t.Booted.IsZero() {
		t.Booted, t.BootedUptime = time.Now().UTC(), uptime()
		if err := a.saveTrial(t); err != nil {
			return err
		}
	}
	a.setStatus("trial", fmt.Sprintf("release %d on trial: waiting for the health gate", t.Release))
	onTrial := uptime() - t.BootedUptime
	if t.BootedUptime <= 0 || onTrial < 0 {
		// A record without the uptime (an older agent): the wall clock,
		// kept within [0, healthTimeout] whatever it did since.
		onTrial = min(max(time.Since(t.Booted), 0), healthTimeout)
	}
	// From here on the monotonic clock: time.Now() carries its reading.
	deadline := time.Now().Add(healthTimeout - onTrial)
	trialStart := time.Now().Add(-onTrial)
	var last error
	for {
		hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		last = a.Health(hctx)
		cancel()
		if last == nil {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	if last != nil {
		res := fmt.Sprintf("rolled back release %d: health gate failed for %v: %v", t.Release, healthTimeout, last)
		if err := a.Boot.ClearTrial(); err != nil {
			return err
		}
		a.markFailed(t.Release)
		a.endTrial(res)
		a.setStatus("error", res+"; rebooting into the previous version")
		return a.Gokrazy.Reboot(ctx)
	}
	// Commit: the new root becomes the default, then the flags go.
	if err := a.Gokrazy.Switch(ctx); err != nil {
		return fmt.Errorf("update: commit release %d: %w", t.Release, err)
	}
	if err := a.Boot.ClearTrial(); err != nil {
		return fmt.Errorf("update: commit release %d: %w", t.Release, err)
	}
	if err := SaveFloors(a.dir(), Floors{Release: t.Release}); err != nil {
		return err
	}
	a.committed = true
	res := fmt.Sprintf("committed release %d (%s) after %v", t.Release, t.Version, time.Since(trialStart).Round(time.Second))
	a.endTrial(res)
	a.setStatus("idle", res)
	return nil
}

// errOutsideWindow: a verified release is ready and waits for the window.
var errOutsideWindow = errors.New("update: waiting for the update window")

// CheckOnce polls the feed and, if it offers a newer verified release and
// policy allows, installs it and reboots into its trial. Outside the update
// window it returns errOutsideWindow with the release downloaded.
func (a *Agent) CheckOnce(ctx context.Context, u config.Update) error {
	if u.FeedURL == "" {
		a.setStatus("idle", "no update feed configured")
		return nil
	}
	a.Client.FeedURL = u.FeedURL
	a.setStatus("checking", "checking "+u.FeedURL)
	offer, err := a.Client.Check(ctx)
	a.mu.Lock()
	a.status.LastCheck = time.Now().UTC()
	a.mu.Unlock()
	if errors.Is(err, ErrUpToDate) {
		a.setStatus("idle", fmt.Sprintf("up to date (release %d)", a.Release))
		return nil
	}
	if err != nil {
		a.setStatus("error", err.Error())
		return err
	}
	a.mu.Lock()
	a.status.Available = &offer.Custom
	a.mu.Unlock()
	if offer.Release == a.failedRelease() {
		// Installing it again would fail again and reboot the box in a loop.
		a.setStatus("idle", fmt.Sprintf("release %d failed its trial on this box; waiting for a newer release", offer.Release))
		return nil
	}
	a.setStatus("downloading", fmt.Sprintf("downloading release %d (%d bytes)", offer.Release, offer.Length()))
	path, err := a.Client.Download(ctx, offer)
	if err != nil {
		a.setStatus("error", err.Error())
		return err
	}
	if !u.Auto {
		a.setStatus("idle", fmt.Sprintf("release %d downloaded and verified; automatic install is off", offer.Release))
		return nil
	}
	if ok, err := u.InWindow(time.Now()); err != nil || !ok {
		a.setStatus("idle", fmt.Sprintf("release %d ready; waiting for the update window %s", offer.Release, u.Window))
		if err != nil {
			return err
		}
		return errOutsideWindow
	}
	if a.committed {
		a.setStatus("installing", fmt.Sprintf("release %d ready; restarting first, so gokrazy writes to the partition we do not run from", offer.Release))
		return a.Gokrazy.Reboot(ctx)
	}
	a.setStatus("installing", fmt.Sprintf("writing release %d to the inactive root partition", offer.Release))
	if err := a.Gokrazy.WriteRoot(ctx, path); err != nil {
		a.setStatus("error", err.Error())
		return err
	}
	if err := a.saveTrial(&Trial{Release: offer.Release, Version: offer.Version, Installed: time.Now().UTC()}); err != nil {
		return err
	}
	if err := a.Boot.EnableTrial(); err != nil {
		os.Remove(filepath.Join(a.dir(), "trial.json"))
		a.setStatus("error", err.Error())
		return err
	}
	os.Remove(path)
	a.setStatus("trial", fmt.Sprintf("release %d installed; rebooting into its trial", offer.Release))
	return a.Gokrazy.Reboot(ctx)
}

// Run settles a pending trial, then checks the feed every interval and
// whenever the admin socket asks.
func (a *Agent) Run(ctx context.Context, loadConfig func() (config.Update, error)) error {
	a.trigger = make(chan struct{}, 1)
	go a.serveAdmin(ctx)
	u, err := loadConfig()
	if err != nil {
		a.Log.Error("update: config", "err", err)
		u = config.DefaultUpdate()
	}
	ht, err := u.HealthDeadline()
	if err != nil {
		a.Log.Error("update: config", "err", err)
		ht = 3 * time.Minute
	}
	if err := a.ResolveTrial(ctx, ht); err != nil {
		a.setStatus("error", err.Error())
	}
	failures := 0
	for {
		u, err := loadConfig()
		if err != nil {
			a.setStatus("error", err.Error())
		} else if err = a.CheckOnce(ctx, u); err != nil && !errors.Is(err, errOutsideWindow) {
			a.Log.Warn("update: check", "err", err)
		}
		every, ierr := u.CheckInterval()
		if ierr != nil {
			every = 24 * time.Hour
		}
		if errors.Is(err, errOutsideWindow) {
			// A daily check at 14:00 would never meet a 02:00-05:00
			// window: come back when it opens.
			err = nil
			if d, werr := u.UntilWindow(time.Now()); werr == nil && d > 0 {
				every = min(every, d+time.Second)
			}
		}
		// A failed check (the network not up yet at boot, the feed's
		// server down for a moment) is retried soon, not a day later.
		next := every
		if err != nil {
			failures++
			next = min(every, retryAfter(failures))
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-a.trigger:
		case <-time.After(next):
		}
	}
}

// retryAfter is the pause after the n-th failed check in a row: one minute,
// doubling, at most a day.
func retryAfter(n int) time.Duration {
	return min(time.Minute<<min(n-1, 11), 24*time.Hour)
}

// AdminSocket is the agent's local API: GET /status, POST /check.
func AdminSocket(d state.Dir) string { return filepath.Join(d.Update(), "agent.sock") }

func (a *Agent) serveAdmin(ctx context.Context) {
	sock := AdminSocket(a.State)
	os.MkdirAll(filepath.Dir(sock), 0o700)
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		a.Log.Error("update: admin socket", "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.Status())
	})
	mux.HandleFunc("POST /check", func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.trigger <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	srv.Serve(ln)
}
