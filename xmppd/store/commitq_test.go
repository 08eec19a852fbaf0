package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Writes queued while a commit runs share the next commit; a failing
// write gets its own error and the others are committed without it.
func TestCommitQueueGroupsAndIsolates(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(k string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("q"))
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte("v"))
		}
	}
	// The first commit is held up; 100 writes queue behind it.
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	s.Enqueue(func(tx *bolt.Tx) error { <-release; return put("first")(tx) }, func(error) { wg.Done() })
	queueEmpty(t, s)
	errs := make([]error, 100)
	boom := errors.New("boom")
	for i := range 100 {
		wg.Add(1)
		fn := put(fmt.Sprint("k", i))
		if i == 50 {
			fn = func(*bolt.Tx) error { return boom }
		}
		s.Enqueue(fn, func(err error) { errs[i] = err; wg.Done() })
	}
	before := s.Commits()
	close(release)
	wg.Wait()
	if n := s.Commits() - before; n != 2 {
		t.Errorf("the held commit and 100 queued writes took %d commits, want 2", n)
	}
	for i, err := range errs {
		if i == 50 && !errors.Is(err, boom) || i != 50 && err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	s.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("q"))
		for i := range 100 {
			if got := b.Get([]byte(fmt.Sprint("k", i))) != nil; got != (i != 50) {
				t.Errorf("k%d stored: %v", i, got)
			}
		}
		return nil
	})
}

// A full queue makes the writer wait instead of growing.
func TestCommitQueueBounded(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release := make(chan struct{})
	s.Enqueue(func(*bolt.Tx) error { <-release; return nil }, nil)
	queueEmpty(t, s)
	for range MaxQueued {
		s.Enqueue(func(*bolt.Tx) error { return nil }, nil)
	}
	blocked := make(chan struct{})
	go func() {
		s.Enqueue(func(*bolt.Tx) error { return nil }, nil)
		close(blocked)
	}()
	select {
	case <-blocked:
		t.Fatal("a write past MaxQueued was queued without waiting")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting writer was never let in")
	}
}

// queueEmpty waits until the commit loop took every queued job.
func queueEmpty(t *testing.T, s *Store) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		s.q.mu.Lock()
		n := len(s.q.jobs)
		s.q.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("commit loop never took its jobs")
		}
		time.Sleep(time.Millisecond)
	}
}

// A steady trickle of writes (one a millisecond, like a busy evening's
// messages) is committed at most once per CommitInterval, not once per
// write: what an SD card's wear is made of.
func TestCommitQueueTrickleIsGrouped(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	start := time.Now()
	const n = 200
	for i := range n {
		wg.Add(1)
		s.Enqueue(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("t"))
			if err != nil {
				return err
			}
			return b.Put([]byte(fmt.Sprint(i)), nil)
		}, func(error) { wg.Done() })
		time.Sleep(time.Millisecond) // pacing the load, not synchronisation
	}
	wg.Wait()
	elapsed := time.Since(start)
	max := uint64(elapsed/CommitInterval) + 2
	if c := s.Commits(); c > max {
		t.Errorf("%d writes over %v took %d commits, want at most %d (one per %v)", n, elapsed, c, max, CommitInterval)
	}
	t.Logf("%d writes over %v: %d commits", n, elapsed.Round(time.Millisecond), s.Commits())
}

// BatchLocal: one value and one flush per batch; a failing flush has
// every write of the batch committed on its own, so only the write that
// caused it fails. Outside the queue it is not available.
func TestCommitQueueBatchLocal(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type key struct{}
	flushes := 0
	// Each write adds its number to the batch's sum; the flush stores the
	// sum, and refuses a batch whose sum contains the poisoned 13.
	write := func(n int) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			v, ok := s.BatchLocal(tx, key{}, func() any { return new([]int) }, func(tx *bolt.Tx, v any) error {
				flushes++
				ns := *v.(*[]int)
				b, err := tx.CreateBucketIfNotExists([]byte("sum"))
				if err != nil {
					return err
				}
				for _, n := range ns {
					if n == 13 {
						return errors.New("unlucky")
					}
					if err := b.Put([]byte(fmt.Sprint(n)), nil); err != nil {
						return err
					}
				}
				return nil
			})
			if !ok {
				return errors.New("no batch state in the queue's transaction")
			}
			*v.(*[]int) = append(*v.(*[]int), n)
			return nil
		}
	}
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	s.Enqueue(func(*bolt.Tx) error { <-release; return nil }, func(error) { wg.Done() })
	queueEmpty(t, s)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		s.Enqueue(write(i), func(err error) { errs[i] = err; wg.Done() })
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i == 13) {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if flushes != 1+20 {
		t.Errorf("%d flushes, want 21 (the failed batch's, then one per write alone)", flushes)
	}
	s.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("sum"))
		for i := range 20 {
			if got := b.Get([]byte(fmt.Sprint(i))) != nil; got != (i != 13) {
				t.Errorf("%d stored: %v", i, got)
			}
		}
		return nil
	})
	if err := s.Update(func(tx *bolt.Tx) error {
		if _, ok := s.BatchLocal(tx, key{}, func() any { return nil }, nil); ok {
			t.Error("BatchLocal in a transaction that is not the queue's")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
