package xmppd

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/store"
)

// A database whose file is mostly free space (here: 100 MB written, 90%
// deleted, as expired archives leave it) is compacted at start, and the
// members' data is still there afterwards.
func TestStartCompactsAMostlyEmptyFile(t *testing.T) {
	dir := state.Dir(t.TempDir())
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir.DB())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount("alice", "correct horse", false); err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat([]byte("m"), 2000)
	for i := 0; i < 50000; i += 1000 {
		if err := st.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("test-filler"))
			if err != nil {
				return err
			}
			for j := i; j < i+1000; j++ {
				if err := b.Put(store.U64(uint64(j)), val); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("test-filler")) }); err != nil {
		t.Fatal(err)
	}
	if !st.WorthCompacting() {
		t.Fatalf("100 MB free of the file is not worth compacting? free %d", st.FreeBytes())
	}
	st.Close()
	before, _ := os.Stat(dir.DB())
	d := startTest(t, dir)
	after, _ := os.Stat(dir.DB())
	t.Logf("database file %d → %d bytes at start", before.Size(), after.Size())
	if after.Size() > before.Size()/4 {
		t.Errorf("not compacted: %d → %d bytes", before.Size(), after.Size())
	}
	dial(t, d, "alice", "correct horse")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
