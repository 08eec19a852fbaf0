package store

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// metaFreelist reads the newest meta page of the bbolt file at path and
// returns its freelist page id. The layout is bbolt's on-disk format
// (page header 16 bytes, then magic, version, page size, flags, root
// bucket 16 bytes, freelist pgid, high-water pgid, txid).
func metaFreelist(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	psz := int(binary.LittleEndian.Uint32(f[24:28]))
	var best, txid uint64
	for i := 0; i < 2; i++ {
		m := f[i*psz:]
		if binary.LittleEndian.Uint32(m[16:20]) != 0xED0CDAED {
			t.Fatalf("meta page %d: bad magic", i)
		}
		if tx := binary.LittleEndian.Uint64(m[64:72]); i == 0 || tx > txid {
			txid, best = tx, binary.LittleEndian.Uint64(m[48:56])
		}
	}
	return best
}

// The freelist is not written at commit (issue 13: it made every archive
// commit write the whole list of free pages to the SD card), and reopening
// the file rebuilds it: pages freed before the close are reused, not
// appended to the file.
func TestFreelistNotSyncedAndRebuilt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("churn")
	val := make([]byte, 1000)
	// Fill, then delete everything: many free pages.
	for round := 0; round < 2; round++ {
		if err := s.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(b)
			if err != nil {
				return err
			}
			for i := 0; i < 2000; i++ {
				k := []byte(fmt.Sprintf("k%06d", i))
				if round == 0 {
					err = bk.Put(k, val)
				} else {
					err = bk.Delete(k)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := metaFreelist(t, path); got != ^uint64(0) {
		t.Fatalf("meta page points at a freelist on page %d: the freelist is written at every commit", got)
	}
	fi, _ := os.Stat(path)
	size := fi.Size()

	s, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if free := s.db.Stats().FreePageN; free < 100 {
		t.Fatalf("reopened store knows %d free pages, want the ~500 freed before the close", free)
	}
	// Writing half as much again fits in the freed pages.
	if err := s.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(b)
		for i := 0; i < 1000; i++ {
			if err := bk.Put([]byte(fmt.Sprintf("k%06d", i)), val); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() > size {
		t.Fatalf("file grew from %d to %d bytes: the freed pages were not reused after reopening", size, fi.Size())
	}
	if err := CheckFile(path); err != nil {
		t.Fatalf("page check of the closed file: %v", err)
	}
}
