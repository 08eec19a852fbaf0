package diskuse

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fake is a storage device whose counters the test moves.
type fake struct {
	used, total uint64
	raw         uint64
	boot        string
}

func (f *fake) watcher(file string) *Watcher {
	w := New("/unused", file)
	w.statfs = func(string) (uint64, uint64, uint64, error) { return f.used, f.total, f.total - f.used, nil }
	w.written = func(string) (uint64, string, error) { return f.raw, "device", nil }
	w.bootID = func() string { return f.boot }
	return w
}

const gb = 1000 * 1000 * 1000

func TestForecastAndWarning(t *testing.T) {
	file := filepath.Join(t.TempDir(), "diskuse.json")
	f := &fake{used: 2 * gb, total: 32 * gb, boot: "a"}
	w := f.watcher(file)
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	// Ten days, hourly: 0.5 GB more in use a day, 2 GB written a day.
	for h := 0; h <= 240; h++ {
		f.used = 2*gb + uint64(h)*gb/48
		f.raw = uint64(h) * gb / 12
		if err := w.Sample(start.Add(time.Duration(h) * time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	r := w.Report()
	if r.Span != 240*time.Hour {
		t.Fatalf("span %v, want 10 days", r.Span)
	}
	if r.GrowthPerDay < gb/2-1000 || r.GrowthPerDay > gb/2+1000 {
		t.Errorf("growth %d bytes a day, want 0.5 GB", r.GrowthPerDay)
	}
	if r.WrittenPerDay < 2*gb-1000 || r.WrittenPerDay > 2*gb+1000 {
		t.Errorf("written %d bytes a day, want 2 GB", r.WrittenPerDay)
	}
	// 25 GB free at 0.5 GB a day: 50 days, no warning yet.
	if d := r.FullIn.Hours() / 24; d < 49.9 || d > 50.1 {
		t.Errorf("full in %.1f days, want 50", d)
	}
	if r.Warn != "" {
		t.Errorf("warned with 50 days left: %q", r.Warn)
	}
	// A faster week: 2 GB a day from now on. In a week the forecast
	// (over the last 14 days) is under 30 days and the page warns.
	used := f.used
	for h := 1; h <= 7*24; h++ {
		f.used = used + uint64(h)*gb/12
		if err := w.Sample(start.Add(time.Duration(240+h) * time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	r = w.Report()
	if r.FullIn <= 0 || r.FullIn >= warnWithin || !strings.Contains(r.Warn, "full in about") {
		t.Errorf("full in %v, warning %q", r.FullIn, r.Warn)
	}
	if msg := w.DueWarning(start.Add(408 * time.Hour)); msg != r.Warn {
		t.Errorf("warning due %q, want %q", msg, r.Warn)
	}
	if msg := f.watcher(file).DueWarning(start.Add(420 * time.Hour)); msg != "" {
		t.Errorf("warned again after 12 hours (and a restart): %q", msg)
	}
	if msg := w.DueWarning(start.Add(408*time.Hour + warnEvery)); msg == "" {
		t.Error("not warned again a week later")
	}
	// Almost full: a warning whatever the rate.
	f.used = f.total - 100*1000*1000
	w.Sample(start.Add(500 * time.Hour))
	if r := w.Report(); !strings.Contains(r.Warn, "almost full") {
		t.Errorf("100 MB left, warning %q", r.Warn)
	}
}

// The device counter starts at zero at every boot; bytes written add up
// across boots, and across a restart of the service the history is kept.
func TestWrittenAcrossBootsAndRestarts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "diskuse.json")
	f := &fake{used: gb, total: 8 * gb, boot: "a", raw: 1000}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	step := func(w *Watcher) {
		now = now.Add(time.Hour)
		if err := w.Sample(now); err != nil {
			t.Fatal(err)
		}
	}
	w := f.watcher(file)
	step(w) // first sample: the history starts at 0
	f.raw = 5000
	step(w)             // +4000
	w = f.watcher(file) // the service restarted, same boot
	f.raw = 6000
	step(w)                  // +1000
	f.boot, f.raw = "b", 700 // rebooted: counter from zero
	step(w)                  // +700
	w = f.watcher(file)
	f.raw = 900
	step(w) // +200
	if got := w.h.Samples[len(w.h.Samples)-1].Written; got != 5900 {
		t.Fatalf("written %d bytes in all, want 5900", got)
	}
	if len(w.h.Samples) != 5 {
		t.Fatalf("%d samples kept, want 5", len(w.h.Samples))
	}
}

func TestHistoryIsThinned(t *testing.T) {
	f := &fake{used: gb, total: 8 * gb, boot: "a"}
	w := f.watcher(filepath.Join(t.TempDir(), "diskuse.json"))
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	var last time.Time
	for h := 0; h < 90*24; h++ {
		last = start.Add(time.Duration(h) * time.Hour)
		if err := w.Sample(last); err != nil {
			t.Fatal(err)
		}
	}
	n := len(w.h.Samples)
	// Two days hourly, then one a day back to 60 days.
	if n < 100 || n > 112 {
		t.Fatalf("%d samples kept after 90 days of hourly samples", n)
	}
	if age := last.Sub(w.h.Samples[0].At); age > keepDaily+24*time.Hour {
		t.Fatalf("oldest sample %v old", age)
	}
	if r := w.Report(); r.Span < 13*24*time.Hour {
		t.Fatalf("forecast over %v only", r.Span)
	}
}

func TestShortHistoryHasNoForecast(t *testing.T) {
	f := &fake{used: gb, total: 8 * gb, boot: "a"}
	w := f.watcher(filepath.Join(t.TempDir(), "diskuse.json"))
	now := time.Now()
	w.Sample(now)
	f.used += gb
	w.Sample(now.Add(3 * time.Hour))
	r := w.Report()
	if !r.Known || r.FullIn != 0 || r.GrowthPerDay != 0 || r.Warn != "" {
		t.Fatalf("3 hours of history gave a forecast: %+v", r)
	}
}

// The real counters of this machine can be read (a block device, or the
// process's own counter where there is none).
func TestReadsThisMachine(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, filepath.Join(dir, "status", "diskuse.json"))
	if err := w.Sample(time.Now()); err != nil {
		t.Fatal(err)
	}
	r := w.Report()
	if !r.Known || r.Last.Total == 0 || r.Last.Used == 0 {
		t.Fatalf("report %+v", r)
	}
	t.Logf("source process=%v, %s used of %s", r.Process, Bytes(r.Last.Used), Bytes(r.Last.Total))
}
