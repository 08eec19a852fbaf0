package mam

import (
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
)

// idAlloc hands out archive ids before their commit (the delivered copy
// carries the stanza-id while the commit is still under way, see
// server.Commit) and knows which are not committed yet.
//
// An id is the archiving time in microseconds, raised to one past the
// account's last id when the clock has not moved on or moved back (a Pi
// without a battery clock), so ids are unique and ordered like the
// archive. Commits of one account can finish out of order (two senders,
// two batches): a query must not page past an id whose message is not
// there yet, or a client syncing "after" the later one would never see
// the earlier. So a query first waits until every id allocated before it
// started is committed (waitCommitted).
type idAlloc struct {
	mu      sync.Mutex
	changed *sync.Cond
	last    map[string]uint64   // per account, loaded from the archive on first use
	pending map[string][]uint64 // allocated, not yet committed, ascending
}

func (a *idAlloc) init() {
	a.changed = sync.NewCond(&a.mu)
	a.last = map[string]uint64{}
	a.pending = map[string][]uint64{}
}

func (a *idAlloc) alloc(srv *server.Server, user string, now time.Time) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	last, ok := a.last[user]
	if !ok {
		_ = srv.Store.View(func(tx *bolt.Tx) error {
			_, last = bounds(tx, user)
			return nil
		})
	}
	id := max(timeID(now), last+1)
	a.last[user] = id
	a.pending[user] = append(a.pending[user], id)
	return id
}

func (a *idAlloc) done(user string, id uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pending[user]
	if i := slices.Index(p, id); i >= 0 {
		p = slices.Delete(p, i, i+1)
	}
	// An emptied list stays (with its array) for the account's next
	// message: deleted, it was made again for nearly every message.
	a.pending[user] = p
	a.changed.Broadcast()
}

// waitCommitted waits (up to timeout) until every id of user allocated so
// far is committed.
func (a *idAlloc) waitCommitted(user string, timeout time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	upTo := a.last[user]
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() {
		a.mu.Lock()
		a.changed.Broadcast()
		a.mu.Unlock()
	})
	defer t.Stop()
	for {
		p := a.pending[user]
		if len(p) == 0 || p[0] > upTo {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		a.changed.Wait()
	}
}

// isPending reports whether id of user is allocated and not yet committed.
func (a *idAlloc) isPending(user string, id uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Contains(a.pending[user], id)
}

// forget drops what is kept of a deleted account.
func (a *idAlloc) forget(user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.last, user)
	if len(a.pending[user]) == 0 {
		delete(a.pending, user)
	}
}
