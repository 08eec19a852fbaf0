// Package diskuse keeps a short history of how full the box's storage is
// and how much is written to it, and forecasts from it when the storage
// fills (issue 15: "a forecast of when storage fills at the current rate
// on the health page, a warning before it does, bytes written per day
// (SD-card wear) shown").
//
// A sample is taken at start and hourly after that (the box wakes hourly
// anyway to save its clock; no extra wake-ups per message or per minute),
// and the history is saved to STATE/status/diskuse.json so that a restart
// or an update does not reset the forecast. The history keeps one sample
// per hour for two days and one per day for 60 days: a few kilobytes.
//
// Bytes written are the storage device's own counter (sectors written in
// /sys/dev/block/MAJ:MIN/stat for the device holding the state directory),
// so they include everything written to the card — what wears it — not
// only the chat service's writes. The counter starts at zero at every boot;
// the history adds up the increases, recognising a new boot by the
// kernel's boot id. Where the state directory is on no block device (a
// tmpfs, an overlay in a container) the process's own write_bytes from
// /proc/self/io stand in, and Report says so.
package diskuse

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Sample is one reading.
type Sample struct {
	At    time.Time `json:"at"`
	Used  uint64    `json:"used"`  // bytes in use on the file system
	Total uint64    `json:"total"` // its size
	Free  uint64    `json:"free"`  // bytes available to the box
	// Written is the total of bytes written to the device since the
	// history began (across boots).
	Written uint64 `json:"written"`
}

// history is what is saved between starts.
type history struct {
	Samples []Sample `json:"samples"`
	// The raw device counter at the last sample and the boot it was read
	// in: a lower counter or another boot means the counter restarted.
	LastRaw  uint64 `json:"last_raw"`
	BootID   string `json:"boot_id"`
	Source   string `json:"source"` // "device" or "process"
	Modified time.Time
	// Warned is when the admins were last sent a warning (DueWarning).
	Warned time.Time `json:"warned"`
}

// Keep one sample an hour for keepHourly, one a day for keepDaily.
const (
	keepHourly = 48 * time.Hour
	keepDaily  = 60 * 24 * time.Hour
)

// Watcher samples the storage that holds dir and keeps the history in file.
type Watcher struct {
	dir, file string
	h         history
	// Read the counters; replaced in tests.
	statfs  func(dir string) (used, total, free uint64, err error)
	written func(dir string) (raw uint64, source string, err error)
	bootID  func() string
}

// New loads the history from file (a missing or unreadable file starts a
// new one: the history is a forecast's input, nothing depends on it).
func New(dir, file string) *Watcher {
	w := &Watcher{dir: dir, file: file, statfs: statfs, written: deviceWritten, bootID: bootID}
	if b, err := os.ReadFile(file); err == nil {
		if json.Unmarshal(b, &w.h) != nil {
			w.h = history{}
		}
	}
	return w
}

// Sample takes a reading at now, thins the history and saves it.
func (w *Watcher) Sample(now time.Time) error {
	used, total, free, err := w.statfs(w.dir)
	if err != nil {
		return fmt.Errorf("diskuse: %w", err)
	}
	raw, source, err := w.written(w.dir)
	if err != nil {
		return fmt.Errorf("diskuse: %w", err)
	}
	boot := w.bootID()
	var written uint64
	if n := len(w.h.Samples); n > 0 {
		written = w.h.Samples[n-1].Written
		switch {
		case source != w.h.Source:
			// Another counter (the state moved): count nothing for the
			// step rather than a counter's whole life.
		case boot != w.h.BootID || raw < w.h.LastRaw:
			written += raw // a new boot: the counter started at zero
		default:
			written += raw - w.h.LastRaw
		}
	}
	w.h.LastRaw, w.h.BootID, w.h.Source = raw, boot, source
	w.h.Samples = append(w.h.Samples, Sample{At: now, Used: used, Total: total, Free: free, Written: written})
	w.h.Samples = thin(w.h.Samples, now)
	w.h.Modified = now
	return w.save()
}

// thin keeps every sample of the last keepHourly (at most one an hour),
// one a day before that, nothing older than keepDaily. The newest sample is
// always kept.
func thin(s []Sample, now time.Time) []Sample {
	out := s[:0:0]
	var last time.Time
	for i, x := range s {
		age := now.Sub(x.At)
		if age > keepDaily && i < len(s)-1 {
			continue
		}
		step := time.Hour - time.Minute
		if age > keepHourly {
			step = 24*time.Hour - time.Hour
		}
		if !last.IsZero() && x.At.Sub(last) < step && i < len(s)-1 {
			continue
		}
		out = append(out, x)
		last = x.At
	}
	return out
}

func (w *Watcher) save() error {
	b, err := json.Marshal(&w.h)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(w.file), 0o700); err != nil {
		return fmt.Errorf("diskuse: %w", err)
	}
	tmp := w.file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("diskuse: %w", err)
	}
	// No fsync: losing an hour of this history in a power cut costs a
	// forecast nothing, and a sync per hour is a write the card need not
	// take. The rename still keeps the file whole.
	if err := os.Rename(tmp, w.file); err != nil {
		return fmt.Errorf("diskuse: %w", err)
	}
	return nil
}

// Report is what the health page shows.
type Report struct {
	Known bool // at least one sample
	Last  Sample
	// Over Span (up to 14 days, at least a day for a forecast):
	Span          time.Duration
	GrowthPerDay  int64  // bytes of storage used more per day (negative: shrinking)
	WrittenPerDay uint64 // bytes written to the device per day
	// FullIn is when the storage fills at GrowthPerDay; 0 when it does not
	// grow or the history is too short to say.
	FullIn time.Duration
	// Process is true when the bytes written are the chat service's own
	// (no block device under the state directory).
	Process bool
	// Warn is a plain-words warning, "" when there is nothing to warn of.
	Warn string
}

// The forecast uses up to forecastSpan of history, and needs forecastMin.
const (
	forecastSpan = 14 * 24 * time.Hour
	forecastMin  = 24 * time.Hour
	// Warn when the storage fills within warnWithin at the current rate,
	// or when less than warnFreeShare of it (or warnFreeBytes) is left.
	warnWithin    = 30 * 24 * time.Hour
	warnFreeShare = 0.05
	warnFreeBytes = 500 << 20
)

// Report summarises the history as of its newest sample.
func (w *Watcher) Report() Report {
	return report(w.h.Samples, w.h.Source == "process")
}

func report(s []Sample, process bool) Report {
	var r Report
	if len(s) == 0 {
		return r
	}
	r.Known, r.Process = true, process
	r.Last = s[len(s)-1]
	i, _ := slices.BinarySearchFunc(s, r.Last.At.Add(-forecastSpan), func(x Sample, t time.Time) int { return x.At.Compare(t) })
	first := s[min(i, len(s)-1)]
	r.Span = r.Last.At.Sub(first.At)
	if r.Span >= forecastMin {
		days := r.Span.Hours() / 24
		r.GrowthPerDay = int64(float64(int64(r.Last.Used)-int64(first.Used)) / days)
		r.WrittenPerDay = uint64(float64(r.Last.Written-first.Written) / days)
		if r.GrowthPerDay > 0 {
			r.FullIn = time.Duration(float64(r.Last.Free) / float64(r.GrowthPerDay) * float64(24*time.Hour))
		}
	}
	switch {
	case r.Last.Total > 0 && (float64(r.Last.Free) < warnFreeShare*float64(r.Last.Total) || r.Last.Free < warnFreeBytes):
		r.Warn = fmt.Sprintf("The box's storage is almost full: %s left.", Bytes(r.Last.Free))
	case r.FullIn > 0 && r.FullIn < warnWithin:
		r.Warn = fmt.Sprintf("At the rate of the last %s, the box's storage is full in about %s.", Days(r.Span), Days(r.FullIn))
	}
	if r.Warn != "" {
		r.Warn += " Keep the message archive and shared files for fewer days, or move the box to a larger card (back it up, restore onto the new card)."
	}
	return r
}

// warnEvery is how often the admins are told again while a warning stands.
const warnEvery = 7 * 24 * time.Hour

// DueWarning returns the warning to send to the admins as a chat message:
// the report's warning when there is one and none was sent in the last
// week, else "". Sending is the caller's; the time is saved.
func (w *Watcher) DueWarning(now time.Time) string {
	r := w.Report()
	if r.Warn == "" || (!w.h.Warned.IsZero() && now.Sub(w.h.Warned) < warnEvery && !now.Before(w.h.Warned)) {
		return ""
	}
	w.h.Warned = now
	w.save()
	return r.Warn
}

// Bytes writes n for people: "1.2 GB", "340 MB", "12 kB".
func Bytes(n uint64) string {
	const k = 1000
	switch {
	case n >= k*k*k:
		return fmt.Sprintf("%.1f GB", float64(n)/(k*k*k))
	case n >= k*k:
		return fmt.Sprintf("%.0f MB", float64(n)/(k*k))
	default:
		return fmt.Sprintf("%d kB", (n+k-1)/k)
	}
}

// Days writes a duration in days or weeks for people.
func Days(d time.Duration) string {
	days := int(d.Hours()/24 + 0.5)
	switch {
	case days <= 1:
		return "a day"
	case days < 21:
		return fmt.Sprintf("%d days", days)
	case days < 120:
		return fmt.Sprintf("%d weeks", (days+3)/7)
	default:
		return fmt.Sprintf("%d months", (days+15)/30)
	}
}

func statfs(dir string) (used, total, free uint64, err error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	bs := uint64(fs.Bsize)
	total = fs.Blocks * bs
	return total - fs.Bfree*bs, total, fs.Bavail * bs, nil
}

// deviceWritten reads the sectors written to the block device holding dir
// (a partition has its own stat file), else the process's write_bytes.
func deviceWritten(dir string) (uint64, string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, "", fmt.Errorf("stat %s: %w", dir, err)
	}
	p := fmt.Sprintf("/sys/dev/block/%d:%d/stat", unix.Major(st.Dev), unix.Minor(st.Dev))
	if b, err := os.ReadFile(p); err == nil {
		// Field 7 is sectors written, in 512-byte units whatever the
		// device's sector size (Documentation/block/stat.rst).
		if f := strings.Fields(string(b)); len(f) > 6 {
			if n, err := strconv.ParseUint(f[6], 10, 64); err == nil {
				return n * 512, "device", nil
			}
		}
	}
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, "", errors.New("neither the device's nor the process's write counter can be read")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, "process", err
		}
	}
	return 0, "", errors.New("/proc/self/io has no write_bytes")
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}
