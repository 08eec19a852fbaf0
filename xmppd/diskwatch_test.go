package xmppd

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hearthchat/hearth/appliance/state"
)

// The storage history gets its first sample at start and is kept in the
// status directory; the health figures carry it.
func TestDiskWatchSamplesAtStart(t *testing.T) {
	dir := state.Dir(t.TempDir())
	d := startTest(t, dir)
	defer d.Shutdown(context.Background())
	waitFor(t, "the first storage sample", func() bool { return d.diskReport().Known })
	h := d.health(context.Background())
	if !h.Disk.Known || h.Disk.Last.Total == 0 {
		t.Fatalf("health has no storage history: %+v", h.Disk)
	}
	if _, err := os.Stat(filepath.Join(dir.Status(), "diskuse.json")); err != nil {
		t.Fatalf("history not saved: %v", err)
	}
	// Shutdown twice (tests do) must not stop the sampler twice.
	d.Shutdown(context.Background())
	d.Shutdown(context.Background())
}
