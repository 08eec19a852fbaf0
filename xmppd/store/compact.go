package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Compaction: bbolt never gives space back to the file system. Pages freed
// by expired archive records, deleted accounts and expired uploads' records
// are reused by later writes, but the file keeps its largest size, and on a
// Pi's SD card that space is the members' (issue 15: "compaction of the
// database file when worthwhile"). Compacting copies every key into a new
// file, so it is done only when it returns a lot, at start (no writer can
// run, so no copy can miss a write), and all-or-nothing: the copy is made
// under a temporary name, synced and page-checked, then renamed over the
// live file; a power cut before the rename leaves the old file in use and
// the half-made copy is removed at the next start.

// Worth compacting: at least compactMinFree bytes free inside the file and
// at least compactMinShare of it. The bytes bound keeps a small box from
// copying its whole file at every start for a few megabytes; the share keeps
// a big file from being copied to win back a sliver of it.
const (
	compactMinFree  = 64 << 20
	compactMinShare = 0.25
	// compactTxBytes bounds one copying transaction's dirty pages, which
	// bbolt holds in memory until the commit (bbolt's own Compact takes
	// the bound in key+value bytes).
	compactTxBytes = 8 << 20
)

// compactSuffix names the copy while it is made.
const compactSuffix = ".compact"

// Compaction reports what CompactFile did.
type Compaction struct {
	// Before and After are the file's sizes; Free the bytes inside it that
	// no record used before.
	Before, After, Free int64
	Took                time.Duration
}

// FreeBytes is the space inside the file that no record uses (pages on the
// freelist, including those a reader still holds), as the page size times
// bbolt's free and pending counts.
func (s *Store) FreeBytes() int64 {
	st := s.db.Stats()
	return int64(st.FreePageN+st.PendingPageN) * int64(s.db.Info().PageSize)
}

// WorthCompacting says whether CompactFile would return enough space to be
// worth copying the whole file (see compactMinFree, compactMinShare).
func (s *Store) WorthCompacting() bool {
	fi, err := os.Stat(s.db.Path())
	if err != nil {
		return false
	}
	free := s.FreeBytes()
	return worthCompacting(free, fi.Size())
}

func worthCompacting(free, size int64) bool {
	return free >= compactMinFree && float64(free) >= compactMinShare*float64(size)
}

// RemoveCompactLeftover removes a copy left by a compaction that a power
// cut or kill interrupted before its rename. The live file was never
// touched by it.
func RemoveCompactLeftover(path string) error {
	err := os.Remove(path + compactSuffix)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("store: remove unfinished compaction: %w", err)
}

// CompactFile copies the database at path into a new file holding only the
// records, and puts it in place of the old one. The database must not be
// open (Close the Store first). Either the old file or the complete new one
// is at path afterwards, whatever happens, and an error leaves the old.
func CompactFile(path string) (c Compaction, err error) {
	start := time.Now()
	if err := RemoveCompactLeftover(path); err != nil {
		return c, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return c, fmt.Errorf("store: compact: %w", err)
	}
	c.Before = fi.Size()
	src, err := openRecover(path, 0o600, openOptions())
	if err != nil {
		return c, fmt.Errorf("store: compact: open %s: %w", path, err)
	}
	defer func() {
		if src != nil {
			src.Close()
		}
	}()
	st := src.Stats()
	c.Free = int64(st.FreePageN+st.PendingPageN) * int64(src.Info().PageSize)
	tmp := path + compactSuffix
	// NoSync while copying: nothing in the copy matters until the one
	// sync below, and a sync per copying transaction would write the SD
	// card's pages twice.
	o := *openOptions()
	o.NoSync = true
	dst, err := bolt.Open(tmp, 0o600, &o)
	if err != nil {
		return c, fmt.Errorf("store: compact: create %s: %w", tmp, err)
	}
	fail := func(err error) (Compaction, error) {
		dst.Close()
		os.Remove(tmp)
		return c, fmt.Errorf("store: compact %s: %w", path, err)
	}
	if err := bolt.Compact(dst, src, compactTxBytes); err != nil {
		return fail(err)
	}
	if err := dst.Sync(); err != nil {
		return fail(err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return c, fmt.Errorf("store: compact: close %s: %w", tmp, err)
	}
	// The copy is checked like a backup before it replaces anything.
	if err := CheckFile(tmp); err != nil {
		os.Remove(tmp)
		return c, fmt.Errorf("store: compact: the copy failed its check: %w", err)
	}
	src.Close()
	src = nil
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return c, fmt.Errorf("store: compact: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return c, fmt.Errorf("store: compact: %w", err)
	}
	if fi, err := os.Stat(path); err == nil {
		c.After = fi.Size()
	}
	c.Took = time.Since(start)
	return c, nil
}
