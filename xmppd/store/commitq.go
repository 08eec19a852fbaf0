package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The commit queue: group commit for writes whose caller does not wait
// (the message archive, issue 13: every message to a local account is
// committed before the sender's acknowledgement covers it, but the
// sender's reader goes on meanwhile; see server.Commit).
//
// Why not bbolt's Batch with a goroutine per write: under the benchmark's
// saturation load that cost a goroutine, a channel and a closure per
// message, parked for the length of a commit — thousands of stacks for
// the garbage collector to scan (35% of the server's CPU went to GC
// assists, makechan alone 22%), and nothing bounded how many piled up
// when the disk was slower than the network. Here one goroutine commits
// everything queued since its previous commit in one transaction: one
// commit (bbolt's two fdatasyncs) per batch, at most one commit per
// CommitInterval (an idle queue commits a lone write at once), and a
// full queue makes the writer wait — an SD card slower than the senders
// slows the senders instead of filling memory.

// MaxQueued bounds the writes waiting for the commit queue.
const MaxQueued = 4096

// CommitInterval is the least time between the starts of two commits
// of the queue. Committing as soon as the previous commit ended gave
// 425 commits (850 fdatasyncs) a second at 1,000 messages a second —
// two or three messages per commit, 361 µs of CPU per message, an SD card
// worn per message. A write that finds the queue idle is committed at
// once; under load the queue gathers for this long, so a card sees at
// most 50 commits a second however many messages arrive. Only
// acknowledgements wait for it (a message is delivered before its
// commit), and XEP-0198 acknowledgements are not something a person sees.
var CommitInterval = 20 * time.Millisecond

// maxPerCommit bounds one transaction (its dirty pages are held in memory
// until the commit).
const maxPerCommit = 2048

type queued struct {
	fn   func(tx *bolt.Tx) error
	done func(error)
}

type commitQueue struct {
	mu      sync.Mutex
	space   *sync.Cond // signalled when the queue shrinks
	jobs    []queued
	running bool
	commits uint64    // transactions committed (tests, benchmarks)
	last    time.Time // when the last commit started
	cur     atomic.Pointer[batchState]
}

// Enqueue has fn committed by the commit queue and done (if not nil)
// called with the result, from the queue's goroutine, once the
// transaction is durable. It returns at once unless MaxQueued writes are
// already waiting. fn may run more than once (after another write of the
// same batch failed, the others are committed again without it), so it
// must only depend on its transaction; done runs exactly once.
func (s *Store) Enqueue(fn func(tx *bolt.Tx) error, done func(error)) {
	q := &s.q
	q.mu.Lock()
	if q.space == nil {
		q.space = sync.NewCond(&q.mu)
	}
	for len(q.jobs) >= MaxQueued {
		q.space.Wait()
	}
	q.jobs = append(q.jobs, queued{fn, done})
	if !q.running {
		q.running = true
		go s.commitLoop()
	}
	q.mu.Unlock()
}

// Commits is how many transactions the commit queue has committed.
func (s *Store) Commits() uint64 {
	s.q.mu.Lock()
	defer s.q.mu.Unlock()
	return s.q.commits
}

func (s *Store) commitLoop() {
	q := &s.q
	for {
		q.mu.Lock()
		if len(q.jobs) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		if wait := CommitInterval - time.Since(q.last); wait > 0 && len(q.jobs) < maxPerCommit {
			q.mu.Unlock()
			time.Sleep(wait) // gathering the next batch (see CommitInterval)
			continue
		}
		q.last = time.Now()
		n := min(len(q.jobs), maxPerCommit)
		batch := make([]queued, n)
		copy(batch, q.jobs)
		q.jobs = append(q.jobs[:0], q.jobs[n:]...)
		q.space.Broadcast()
		q.mu.Unlock()
		s.commitBatch(batch)
	}
}

// batchState is what the writes of one commit-queue transaction share
// (BatchLocal).
type batchState struct {
	tx      *bolt.Tx
	vals    map[any]any
	flushes []func(tx *bolt.Tx) error
}

// BatchLocal returns the value kept under key for the commit queue's
// transaction tx (made by init on first use) and true; flush runs once
// with it after every write of the batch, before the commit. A module
// sums there what its writes charge to the storage budget: one Charge per
// account and commit instead of one per message (Charge was a fifth of
// the server's CPU at saturation). For a transaction that is not the
// commit queue's (Update, Batch) it returns false, and the caller does
// its work at once. Only for use from the writes' functions.
func (s *Store) BatchLocal(tx *bolt.Tx, key any, init func() any, flush func(tx *bolt.Tx, v any) error) (any, bool) {
	st := s.q.cur.Load()
	if st == nil || st.tx != tx {
		return nil, false
	}
	if v, ok := st.vals[key]; ok {
		return v, true
	}
	v := init()
	if st.vals == nil {
		st.vals = map[any]any{}
	}
	st.vals[key] = v
	st.flushes = append(st.flushes, func(tx *bolt.Tx) error { return flush(tx, v) })
	return v, true
}

// flushFailed marks a batch whose BatchLocal flush failed.
const flushFailed = -2

// commitBatch commits batch in one transaction; if one write fails, it
// gets its error and the others are committed without it; if a flush
// fails (it cannot tell whose write caused it), each write is committed
// on its own.
func (s *Store) commitBatch(batch []queued) {
	for len(batch) > 0 {
		failed := -1
		var ferr error
		err := s.db.Update(func(tx *bolt.Tx) error {
			failed, ferr = -1, nil
			st := &batchState{tx: tx}
			s.q.cur.Store(st)
			defer s.q.cur.Store(nil)
			for i, j := range batch {
				if err := j.fn(tx); err != nil {
					failed, ferr = i, err
					return errJobFailed
				}
			}
			for _, f := range st.flushes {
				if err := f(tx); err != nil {
					failed, ferr = flushFailed, err
					return errJobFailed
				}
			}
			return nil
		})
		switch {
		case failed == flushFailed && len(batch) > 1:
			for _, j := range batch {
				s.commitBatch([]queued{j})
			}
			return
		case failed == flushFailed:
			failed = 0
		case failed < 0:
			if err != nil {
				err = fmt.Errorf("store: commit: %w", err)
			}
			s.q.mu.Lock()
			s.q.commits++
			s.q.mu.Unlock()
			for _, j := range batch {
				if j.done != nil {
					j.done(err)
				}
			}
			return
		}
		if d := batch[failed].done; d != nil {
			d(ferr)
		}
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
}

var errJobFailed = errors.New("store: a queued write failed")
