package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// fillAndThin writes n records of size bytes into bucket "t" (with a nested
// bucket and sequences, which a copy must keep), then deletes all but every
// keepEvery-th.
func fillAndThin(t *testing.T, s *Store, n, size, keepEvery int) {
	t.Helper()
	val := bytes.Repeat([]byte("x"), size)
	for i := 0; i < n; i += 500 {
		if err := s.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("t"))
			if err != nil {
				return err
			}
			nb, err := b.CreateBucketIfNotExists([]byte("nested"))
			if err != nil {
				return err
			}
			if err := nb.SetSequence(4242); err != nil {
				return err
			}
			for j := i; j < i+500 && j < n; j++ {
				if _, err := b.NextSequence(); err != nil {
					return err
				}
				if err := b.Put(U64(uint64(j)), val); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("t"))
		for j := 0; j < n; j++ {
			if j%keepEvery != 0 {
				if err := b.Delete(U64(uint64(j))); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCompactReturnsSpaceAndKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xmppd.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount("alice", "pw", false); err != nil {
		t.Fatal(err)
	}
	const n, size, keep = 20000, 1000, 10
	fillAndThin(t, s, n, size, keep)
	if free := s.FreeBytes(); free < 15<<20 {
		t.Fatalf("after deleting 90%% of 20 MB, FreeBytes = %d", free)
	}
	s.Close()
	c, err := CompactFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compaction: %+v", c)
	if c.After <= 0 || c.After > c.Before/3 {
		t.Fatalf("file %d → %d bytes: space not returned", c.Before, c.After)
	}
	if _, err := os.Stat(path + compactSuffix); !os.IsNotExist(err) {
		t.Fatalf("copy left behind: %v", err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Account("alice"); err != nil {
		t.Fatalf("account lost in compaction: %v", err)
	}
	err = s.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("t"))
		if b.Sequence() != n {
			return fmt.Errorf("bucket sequence %d, want %d", b.Sequence(), n)
		}
		if nb := b.Bucket([]byte("nested")); nb == nil || nb.Sequence() != 4242 {
			return fmt.Errorf("nested bucket or its sequence lost")
		}
		for j := 0; j < n; j++ {
			v := b.Get(U64(uint64(j)))
			if (j%keep == 0) != (len(v) == size) {
				return fmt.Errorf("record %d: %d bytes after compaction", j, len(v))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.WorthCompacting() {
		t.Fatal("a freshly compacted file is still worth compacting")
	}
}

// A power cut during a compaction leaves a half-made copy beside the live
// file, which was never touched: the next start removes the copy and opens
// the old file as it was.
func TestCompactInterruptedLeavesOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xmppd.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount("alice", "pw", false); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(path)
	if err := os.WriteFile(path+compactSuffix, []byte("half a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := RemoveCompactLeftover(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + compactSuffix); !os.IsNotExist(err) {
		t.Fatalf("leftover copy not removed: %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("the live file changed")
	}
	// A compaction that cannot make its copy (here: the copy's name is
	// taken by a directory) fails and leaves the live file in place.
	if err := os.Mkdir(path+compactSuffix, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path+compactSuffix, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CompactFile(path); err == nil {
		t.Fatal("compaction into a taken name succeeded")
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Account("alice"); err != nil {
		t.Fatalf("account lost after a failed compaction: %v", err)
	}
}

func TestWorthCompacting(t *testing.T) {
	for _, c := range []struct {
		free, size int64
		want       bool
	}{
		{0, 1 << 30, false},
		{63 << 20, 100 << 20, false}, // most of it free, but under 64 MiB
		{100 << 20, 1 << 30, false},  // 100 MiB of a GiB: under a quarter
		{300 << 20, 1 << 30, true},
		{64 << 20, 200 << 20, true},
	} {
		if got := worthCompacting(c.free, c.size); got != c.want {
			t.Errorf("worthCompacting(%d, %d) = %v, want %v", c.free, c.size, got, c.want)
		}
	}
}
