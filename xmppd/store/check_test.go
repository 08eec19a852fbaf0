package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/internal/testenv"
)

// TestCheckUnderWrites: the live health check gives no false report while
// writers commit. The old check (bbolt's page check in a read transaction)
// reported "page N: reachable freed" in about a third of the runs here, and
// -race flagged the freelist. Run with -race.
func TestCheckUnderWrites(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bucket := []byte("load")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	// Writers that grow and shrink one bucket, so pages are freed and
	// reused all the time. Bounded in count and by the checks' end.
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			val := make([]byte, 300)
			for i := 0; i < 200_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := s.Batch(func(tx *bolt.Tx) error {
					b, err := tx.CreateBucketIfNotExists(bucket)
					if err != nil {
						return err
					}
					for range 8 {
						k := U64(r.Uint64N(4000))
						if r.IntN(3) == 0 {
							if err := b.Delete(k); err != nil {
								return err
							}
						} else if err := b.Put(k, val[:r.IntN(len(val))]); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				writes.Add(1)
			}
		}()
	}
	const checks = 1000
	deadline := time.Now().Add(3 * time.Minute)
	bad := 0
	for i := range checks {
		if time.Now().After(deadline) {
			t.Fatalf("only %d checks in 3 minutes", i)
		}
		if err := s.Check(); err != nil {
			bad++
			if bad <= 3 {
				t.Errorf("check %d: %v", i, err)
			}
		}
	}
	close(stop)
	wg.Wait()
	if bad > 0 {
		t.Errorf("%d of %d checks reported a healthy database as damaged", bad, checks)
	}
	// Guard: the checks ran against writers, not an idle file.
	if n := writes.Load(); n < checks {
		t.Fatalf("only %d write transactions during %d checks: the test proved nothing", n, checks)
	}
	t.Logf("%d checks, %d write transactions", checks, writes.Load())
}

// makeDB writes a database with one bucket large enough for a branch root
// and returns its path and the page size.
func makeDB(t *testing.T) (path string, root int64, pageSize int64) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("big"))
		if err != nil {
			return err
		}
		for i := range 2000 {
			if err := b.Put([]byte(fmt.Sprintf("key-%05d", i)), make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *bolt.Tx) error {
		root = int64(tx.Bucket([]byte("big")).RootPage())
		pageSize = int64(tx.DB().Info().PageSize)
		return nil
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, root, pageSize
}

// damage overwrites page pg of the file at path with garbage.
func damage(t *testing.T, path string, pg, pageSize int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, pageSize)
	for i := range junk {
		junk[i] = 0x5a
	}
	if _, err := f.WriteAt(junk, pg*pageSize); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedFileDetected: the full check still finds real damage, at
// start-up (Open refuses the file) and in CheckFile.
func TestDamagedFileDetected(t *testing.T) {
	path, root, ps := makeDB(t)
	if err := CheckFile(path); err != nil {
		t.Fatalf("healthy file: %v", err)
	}
	bad := filepath.Join(filepath.Dir(path), "damaged")
	copyFile(t, path, bad)
	damage(t, bad, root, ps)
	if err := CheckFile(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("CheckFile on a damaged copy: %v", err)
	}
	s, err := Open(bad)
	if err == nil {
		s.Close()
		t.Fatal("Open accepted a damaged file")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	// The healthy original still opens.
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestLiveCheckSeesDamagedRoot: a bucket root damaged while the server runs
// (bbolt reads through a shared mapping, so the write is visible) makes the
// live check fail instead of passing or panicking.
func TestLiveCheckSeesDamagedRoot(t *testing.T) {
	path, root, ps := makeDB(t)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	damage(t, path, root, ps)
	if err := s.Check(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("live check after damaging a bucket root: %v", err)
	}
}

// TestBackupBesideTarget: the backup never goes through $TMPDIR (a rename
// from tmpfs to /perm fails with EXDEV), leaves no temporary file and is a
// checked, openable copy.
func TestBackupBesideTarget(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateAccount("alice", "pw", false); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	target := filepath.Join(out, "backup.db")

	t.Run("TMPDIR missing", func(t *testing.T) {
		t.Setenv("TMPDIR", filepath.Join(dir, "does-not-exist"))
		if err := s.BackupFile(target); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("TMPDIR on another file system", func(t *testing.T) {
		shm, err := os.MkdirTemp("/dev/shm", "hearth-test")
		if err != nil {
			testenv.Skipf(t, "no /dev/shm: %v", err)
		}
		defer os.RemoveAll(shm)
		var a, b syscall.Stat_t
		if syscall.Stat(shm, &a) != nil || syscall.Stat(out, &b) != nil || a.Dev == b.Dev {
			testenv.Skip(t, "/dev/shm is on the same file system as the target")
		}
		t.Setenv("TMPDIR", shm)
		if err := s.BackupFile(target); err != nil {
			t.Fatal(err)
		}
	})
	ents, _ := os.ReadDir(out)
	if len(ents) != 1 || ents[0].Name() != "backup.db" {
		t.Fatalf("target directory holds %v, want only backup.db", ents)
	}
	if err := CheckFile(target); err != nil {
		t.Fatal(err)
	}
	c, err := Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Account("alice"); err != nil {
		t.Fatalf("backup lacks the account: %v", err)
	}
}

// TestBackupToMissingDirFails: an impossible target is an error, not a
// success with the copy left somewhere else.
func TestBackupToMissingDirFails(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.BackupFile(filepath.Join(t.TempDir(), "nope", "b.db")); err == nil {
		t.Fatal("backup into a missing directory succeeded")
	}
}

// The probe must write on every check whatever the wall clock says: a
// probe value from before the clock moved back (a Pi that booted at the
// image's build time and had saved a later one) made the old time-stamped
// probe skip its write, so a full disk passed the health check.
func TestProbeWritesAfterClockMovedBack(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	future := uint64(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	if err := s.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(probeKey, U64(future)) }); err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3; i++ {
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		var got uint64
		s.View(func(tx *bolt.Tx) error {
			got = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(probeKey))
			return nil
		})
		if got != future+i {
			t.Fatalf("check %d: probe is %d, want %d (the check did not write)", i, got, future+i)
		}
	}
}
