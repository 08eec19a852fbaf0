// Package store is xmppd's storage: one bbolt file, a bucket per concern,
// a schema version, group commit and online backup.
//
// Durability rule: a write the server acknowledges to a client has been
// committed with fsync. Writes from many sessions are grouped into one
// transaction (bbolt's Batch) so that an SD card sees one fsync per few
// milliseconds of traffic instead of one per message.
//
// Integrity: bbolt's full page check runs where no writer can interfere —
// in Open, before anything writes (a damaged file is refused), and on each
// backup copy; the live health check is a cheap probe (Check). Space: bbolt
// never shrinks its file, so every per-account store charges what it keeps
// to the account's storage budget (quota.go) and refuses what would exceed
// it.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout this build reads and writes. Buckets a newer
// build adds are ignored by an older one, so a rollback keeps working as long
// as the version number is unchanged; a change that an older build cannot
// read must raise it and migrate into a copy of the file.
const SchemaVersion = 1

var bucketMeta = []byte("meta")

// Store is the open database.
type Store struct {
	db *bolt.DB
	q  commitQueue // commitq.go
}

// ErrCorrupt is returned (wrapped) when the file fails bbolt's page check.
var ErrCorrupt = errors.New("database file is damaged")

// Open opens (creating if needed) the database at path. It runs bbolt's
// full page check first, while no writer can run yet (the check is only
// exact without concurrent writers; see Check), and refuses a damaged file
// with ErrCorrupt rather than write into it: bbolt panics on a bad page
// sooner or later anyway, and a write can spread the damage through the
// freelist. The cure is restoring a backup.
func Open(path string) (*Store, error) {
	if _, err := os.Stat(path); err == nil {
		if err := walkFile(path); err != nil {
			return nil, err
		}
	}
	db, err := openRecover(path, 0o600, openOptions())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := db.View(checkTx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	// Group commit: a burst of messages from many sessions shares one
	// fsync. Short enough to stay invisible next to network latency.
	db.MaxBatchDelay = 2 * time.Millisecond
	db.MaxBatchSize = 500
	s := &Store{db: db}
	if err := s.initSchema(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openOptions are the bbolt options of the live database.
//
// NoFreelistSync: by default bbolt writes the whole freelist (8 bytes per
// free page, several pages once the file has grown and been churned) on
// every commit; issue 13's bench measured ~15 KB written to the SD card per
// archived message at 1,000 msg/s. Without it, a commit writes only the
// pages it dirtied and the meta page, and Open rebuilds the freelist by
// walking every reachable page — which Open's page check (checkTx) does
// anyway. It is crash-safe: the freelist on disk is only a cache of what is
// unreachable from the meta page, and bbolt's docs describe the option as
// costing "a full database re-sync during recovery", nothing else
// (go.etcd.io/bbolt Options.NoFreelistSync; db.go loadFreelist rebuilds it
// with freepages() when the meta page says none was synced). A build
// without the option still opens the file: bbolt writes a freelist on the
// first read-write open without it.
//
// Measured (7 Dec 2026, this machine, warm page cache) on a 594 MB archive
// file with 61,000 free pages: a commit of 20 records wrote 698 KB with the
// freelist synced (124 pages of it the freelist), 192 KB without; Open took
// 145 ms before, 330 ms now (walkFile, the freelist rebuild and checkTx
// each read every page). On the bench's fresh database the freelist is a
// page or two and the difference is within the run-to-run noise.
func openOptions() *bolt.Options {
	return &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true}
}

func (s *Store) initSchema() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		v := b.Get([]byte("schema"))
		if v == nil {
			return b.Put([]byte("schema"), U64(SchemaVersion))
		}
		if got := binary.BigEndian.Uint64(v); got > SchemaVersion {
			return fmt.Errorf("store: database schema %d is newer than this build's %d", got, SchemaVersion)
		}
		return nil
	})
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB exposes bbolt to modules, each of which keeps to its own buckets.
func (s *Store) DB() *bolt.DB { return s.db }

// Batch runs fn in a group-committed write transaction and returns once it
// is durable. fn may run more than once (bbolt retries a batch without a
// failed member), so it must only depend on its transaction.
func (s *Store) Batch(fn func(tx *bolt.Tx) error) error { return s.db.Batch(fn) }

// Update runs fn in its own write transaction.
func (s *Store) Update(fn func(tx *bolt.Tx) error) error { return s.db.Update(fn) }

// View runs fn in a read transaction.
func (s *Store) View(fn func(tx *bolt.Tx) error) error { return s.db.View(fn) }

// Check is the live health probe (the admin API's /health and through it
// the update agent's health gate). It does not run bbolt's page check:
// that check reads the shared freelist, which committing writers change
// under it, so on a busy database it reported "page N: reachable freed" in
// about a third of the runs and the race detector flagged the freelist — a
// healthy release could be rolled back. The full check runs where no
// writer can interfere: in Open, and on the copy BackupFile writes.
//
// The probe proves what a live server needs: every top-level bucket's
// first and last page can be read, and a write commits (fsync included;
// a full or read-only disk fails here) and reads back.
func (s *Store) Check() error {
	if err := s.db.View(probeTx); err != nil {
		return err
	}
	// A counter, not the time: after the wall clock moved back (a Pi
	// without a battery clock learning the time) a time-stamped probe
	// never wrote again, and a full disk went unnoticed.
	var want uint64
	if err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		var cur uint64
		if v := b.Get(probeKey); len(v) == 8 {
			cur = binary.BigEndian.Uint64(v)
		}
		want = cur + 1 // fn may run again in a retried batch: set each time
		return b.Put(probeKey, U64(want))
	}); err != nil {
		return fmt.Errorf("store: probe write: %w", err)
	}
	return s.db.View(func(tx *bolt.Tx) error {
		// Another probe may have committed since ours; any probe value
		// at least as new as ours proves the write path.
		got := tx.Bucket(bucketMeta).Get(probeKey)
		if len(got) != 8 || binary.BigEndian.Uint64(got) < want {
			return fmt.Errorf("store: probe read back %x, wrote %d", got, want)
		}
		return nil
	})
}

var probeKey = []byte("probe")

// probeTx reads the first and last entry of every top-level bucket. A
// damaged page makes bbolt panic; that is turned into an error here so the
// health check reports it instead of taking the daemon down.
func probeTx(tx *bolt.Tx) (err error) {
	var name []byte
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: %w: bucket %q: %v", ErrCorrupt, name, r)
		}
	}()
	return tx.ForEach(func(n []byte, b *bolt.Bucket) error {
		name = n
		c := b.Cursor()
		c.First()
		c.Last()
		return nil
	})
}

// checkTx runs bbolt's full page check in tx. Only exact when no write
// transaction can commit meanwhile (a read tx during writes gives false
// reports; see Check). The channel is always drained: the checker
// goroutine keeps using tx until it closes the channel, so stopping early
// would leave it reading a finished transaction.
func checkTx(tx *bolt.Tx) error {
	const keep = 10
	var errs []error
	n := 0
	for err := range tx.Check() {
		if n++; n <= keep {
			errs = append(errs, err)
		}
	}
	if n == 0 {
		return nil
	}
	if n > keep {
		errs = append(errs, fmt.Errorf("and %d more", n-keep))
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, errors.Join(errs...))
}

// walkFile reads every page reachable in the file at path (opened
// read-only, which loads no freelist) in this goroutine, and reports a
// damaged page as ErrCorrupt. It must run before a read-write open and
// before checkTx: the file's freelist is not synced (openOptions), so bbolt
// rebuilds it by walking the pages in a goroutine of its own
// (DB.freepages), where a damaged page's assertion panic cannot be
// recovered and kills the process — TestDamagedFileDetected crashed so
// before this walk existed.
func walkFile(path string) error {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.View(walkTx)
	db.Close()
	if err != nil {
		return fmt.Errorf("store: %s: %w", path, err)
	}
	return nil
}

// walkTx visits every branch, leaf and value of tx through cursors. bbolt
// asserts each page's header as it reads it (a panic) and a page number
// past the mapping faults; both become ErrCorrupt here.
func walkTx(tx *bolt.Tx) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	var sum byte
	var walk func(b *bolt.Bucket)
	walk = func(b *bolt.Bucket) {
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					walk(nb)
				}
			} else if len(v) > 0 {
				sum ^= v[len(v)-1] // touch overflow pages too
			}
		}
	}
	return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { walk(b); return nil })
}

// openRecover is bolt.Open with a panic (bbolt panics on inconsistencies
// its freelist rebuild finds) returned as ErrCorrupt.
func openRecover(path string, mode os.FileMode, o *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return bolt.Open(path, mode, o)
}

// CheckFile runs the full page check on the database file at path, which
// must not be open for writing (a backup copy, or the file of a stopped
// server).
func CheckFile(path string) error {
	if err := walkFile(path); err != nil {
		return err
	}
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.View(checkTx)
	if cerr := db.Close(); err == nil && cerr != nil {
		return fmt.Errorf("store: close %s: %w", path, cerr)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", path, err)
	}
	return nil
}

// Backup writes a consistent copy of the database while it stays in use.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// BackupFile writes a backup to path atomically and durably, then checks
// the copy with the full page check (a copy taken in one read transaction
// is a snapshot no writer touches, so the check is exact there; it is the
// full check of the live data as of the backup).
//
// The temporary file is written beside path, not under $TMPDIR: renaming
// across file systems (tmpfs to /perm on the box) fails. The file is
// synced before the rename and the directory after it, so that after a
// power cut path is either the old backup or the whole new one.
func (s *Store) BackupFile(path string) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err := s.Backup(f); err != nil {
		f.Close()
		return fmt.Errorf("store: backup to %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("store: backup: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: backup: close %s: %w", tmp, err)
	}
	if err := CheckFile(tmp); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: sync dir %s: %w", dir, err)
	}
	return nil
}

// U64 encodes n big-endian, so keys sort numerically.
func U64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// Key joins parts with a zero byte, which no JID or namespace contains, so
// prefix scans over one account cannot run into another.
func Key(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}
