package upload

import (
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Sweep removes expired files and slots whose PUT never came (their bytes
// go back to the members' budgets) and reports how many records went.
// The timer runs it; tests call it after moving the clock.
func (u *Uploads) Sweep() (removed int, err error) {
	now := u.o.Now().UnixNano()
	var files []string
	var freedRes, freedStored int64
	u.mu.Lock()
	active := make(map[string]bool, len(u.active))
	for k := range u.active {
		active[k] = true
	}
	u.mu.Unlock()
	err = u.srv.Store.Update(func(tx *bolt.Tx) error {
		files, freedRes, freedStored, removed = nil, 0, 0, 0
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return allRecords(b, func(key string, r *record) error {
			expired := r.Done && u.expires(r) <= now
			unused := !r.Done && r.PutBy <= now && !active[key]
			if !expired && !unused {
				return nil
			}
			files = append(files, r.File)
			freedRes += r.Size
			if r.Done {
				freedStored += r.Size
			}
			removed++
			return deleteRecord(tx, b, key, r, true)
		})
	})
	if err != nil {
		u.o.Log.Error("upload: sweep", "err", err)
		return 0, err
	}
	// Records first, files after: a crash in between leaves files that no
	// record names, which the next start removes (recover).
	for _, f := range files {
		u.removeFile(f)
	}
	u.mu.Lock()
	u.reserved -= freedRes
	u.stored -= freedStored
	u.mu.Unlock()
	return removed, nil
}

// next returns when the earliest record is due and whether there is any.
func (u *Uploads) next() (time.Time, bool) {
	var first int64
	any := false
	err := u.srv.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return allRecords(b, func(_ string, r *record) error {
			due := u.expires(r)
			if !r.Done {
				due = r.PutBy
			}
			if !any || due < first {
				first, any = due, true
			}
			return nil
		})
	})
	if err != nil {
		return time.Time{}, true // try again later
	}
	return time.Unix(0, first), any
}

// sweepTimer wakes the sweep. It is armed only while something is stored
// (an empty service never wakes the box) and never sooner than
// SweepEvery after the last sweep or arming.
type sweepTimer struct {
	u  *Uploads
	mu sync.Mutex
	t  *time.Timer
	// stopped: Close was called; nothing arms it again.
	stopped bool
}

func newSweepTimer(u *Uploads) *sweepTimer { return &sweepTimer{u: u} }

// arm starts the timer unless it is running or nothing is stored.
func (s *sweepTimer) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.t != nil {
		return
	}
	due, any := s.u.next()
	if !any {
		return
	}
	s.t = time.AfterFunc(s.delay(due), s.fire)
}

func (s *sweepTimer) delay(due time.Time) time.Duration {
	d := due.Sub(s.u.o.Now())
	if d < s.u.o.SweepEvery {
		d = s.u.o.SweepEvery
	}
	return d
}

func (s *sweepTimer) fire() {
	s.u.Sweep()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t = nil
	if s.stopped {
		return
	}
	if due, any := s.u.next(); any {
		s.t = time.AfterFunc(s.delay(due), s.fire)
	}
}

// armed reports whether the timer is running (tests).
func (s *sweepTimer) armed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t != nil
}

// rearm replaces a running timer by one for the earliest due time now
// (after SetExpiry moved them).
func (s *sweepTimer) rearm() {
	s.mu.Lock()
	if s.t != nil {
		s.t.Stop()
		s.t = nil
	}
	s.mu.Unlock()
	s.arm()
}

func (s *sweepTimer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	if s.t != nil {
		s.t.Stop()
		s.t = nil
	}
}
