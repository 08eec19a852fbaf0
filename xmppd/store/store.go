// Package store is xmppd's storage: one bbolt file, a bucket per concern,
// a schema version, group commit and online backup.
//
// Durability rule: a write the server acknowledges to a client has been
// committed with fsync. Writes from many sessions are grouped into one
// transaction (bbolt's Batch) so that an SD card sees one fsync per few
// milliseconds of traffic instead of one per message.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
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
}

// Open opens (creating if needed) the database at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
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

// Check verifies the file's internal consistency (the health check and the
// update agent's health gate use it).
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
			if len(errs) > 10 {
				break
			}
		}
		return errors.Join(errs...)
	})
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

// BackupFile writes a backup to path atomically.
func (s *Store) BackupFile(path string) error {
	f, err := os.CreateTemp("", "hearth-backup")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := s.Backup(f); err != nil {
		f.Close()
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	return os.Rename(f.Name(), path)
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
