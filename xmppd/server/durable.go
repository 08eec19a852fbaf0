package server

import (
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/session"
)

// Acknowledged means durable (issue 13). A message a local client sends is
// committed to the recipient's archive before the client's acknowledgement
// covers it: the sender's XEP-0198 <a h/> (mod/smacks) and, for clients
// without stream management, the answer to any later iq (the server
// handles a session's stanzas in order).
//
// Waiting for each commit on the session's reader would make every sender
// wait for an fsync per message (5 ms here, far more on an SD card): a
// burst of 3,000 messages from one client took 16 s, and a phone that
// acknowledges slowly could no longer be pushed back (smacks'
// TestBurstToSlowAcker). So a module commits on the session's behalf with
// Commit: the write joins the store's commit queue (store/commitq.go:
// everything queued while the previous commit ran shares the next one)
// while the reader goes on, and the session keeps the position of every stanza whose
// commit is outstanding. DurableCount is then the handled count the server
// may acknowledge: everything before the oldest outstanding stanza. An iq
// from the session waits for its outstanding commits (FromClient), so an
// answer still promises that everything sent before it is stored, and a
// query reads what the same client just sent.

// Committed fires when the last outstanding commit of a session finished
// after an acknowledgement had been sent short of its handled count (mod/
// smacks sends the acknowledgement the client is now owed). Fired on the
// committing goroutine.
var Committed = NewEvent[*session.Session]("committed")

type commitsKey struct{}

// commits is one session's outstanding commits.
type commits struct {
	mu    sync.Mutex
	pos   []uint32      // handled-count positions with a commit outstanding, oldest first
	short bool          // an acknowledgement was sent below the handled count
	idle  chan struct{} // made by a waiter (WaitCommits), closed when pos empties
}

func commitsOf(sess *session.Session) *commits {
	if c, ok := sess.Value(commitsKey{}).(*commits); ok {
		return c
	}
	// Set only from the session's reader (Commit, FromClient): no race
	// between two first uses.
	c := new(commits)
	sess.SetValue(commitsKey{}, c)
	return c
}

// Commit runs fn in a group-committed write transaction for a stanza st
// that is being handled. For a stanza from a local session (st.Origin,
// on its reader goroutine) it returns at once and the commit completes in
// the background; until it has, the session's acknowledgements stop short
// of this stanza (DurableCount) and its next iq waits. done, if not nil,
// runs with the commit's result (on the commit queue's goroutine: it must
// be quick). Another server's stanzas join the queue without waiting
// (see below); the server's own commit before returning. fn may run more
// than once.
func (s *Server) Commit(st *Stanza, fn func(tx *bolt.Tx) error, done func(error)) {
	if st.Origin == nil {
		if st.From.Domainpart() != "" && !s.IsLocal(st.From) {
			// From another server, on its link's reader: committing
			// before the next stanza cost an fsync per message (2 syncs
			// per message, 207 msg/s between two Hearths in make bench).
			// The queue shares commits. Not waiting widens by a commit's
			// milliseconds a window that exists anyway: s2s has no
			// acknowledgements, so a crash loses what a peer wrote and
			// we had not read yet. A Hearth peer writes again whatever
			// its link did not keep for 2 s (s2s/durable.go), which a
			// crash before our commit ends.
			s.enqueue(fn, func(err error) {
				if done != nil {
					done(err)
				}
			})
			return
		}
		err := s.Store.Batch(fn)
		if done != nil {
			done(err)
		}
		return
	}
	sess := st.Origin
	c := commitsOf(sess)
	// The stanza being handled is counted after FromClient returns
	// (c2s): its position is one past the count now.
	p := sess.InCount() + 1
	c.mu.Lock()
	c.pos = append(c.pos, p)
	c.mu.Unlock()
	s.enqueue(fn, func(err error) {
		if done != nil {
			done(err)
		}
		c.mu.Lock()
		for i, q := range c.pos {
			if q == p {
				c.pos = append(c.pos[:i], c.pos[i+1:]...)
				break
			}
		}
		owed := false
		if len(c.pos) == 0 {
			if c.idle != nil {
				close(c.idle)
				c.idle = nil
			}
			owed, c.short = c.short, false
		}
		c.mu.Unlock()
		if owed {
			s.safely(nil, func() { Committed.Fire(s, sess) })
		}
	})
}

// enqueue hands fn to the store's commit queue without waiting; after
// runs with its result on the queue's goroutine, and shutdown waits for
// it before storage closes.
func (s *Server) enqueue(fn func(tx *bolt.Tx) error, after func(error)) {
	f := s.redeliveries()
	f.add()
	s.Store.Enqueue(fn, func(err error) {
		defer f.done()
		after(err)
	})
}

// DurableCount is the handled count sess may acknowledge (XEP-0198 h):
// its InCount, less the stanzas from the oldest one whose commit is still
// outstanding. When it is short, Committed fires once the commits are done.
func (s *Server) DurableCount(sess *session.Session) uint32 {
	h := sess.InCount()
	c, ok := sess.Value(commitsKey{}).(*commits)
	if !ok {
		return h
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pos) == 0 {
		return h
	}
	c.short = true
	return c.pos[0] - 1
}

// WaitCommits waits (up to timeout) until sess has no outstanding commit
// and reports whether it has none.
func (s *Server) WaitCommits(sess *session.Session, timeout time.Duration) bool {
	c, ok := sess.Value(commitsKey{}).(*commits)
	if !ok {
		return true
	}
	c.mu.Lock()
	if len(c.pos) == 0 {
		c.mu.Unlock()
		return true
	}
	// Made only when someone waits: a channel per committed message
	// was one more allocation on every archived message's path.
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

// commitWait bounds how long an iq waits for its session's commits: a
// commit stuck longer than this is a storage failure the health check
// reports; the iq is then answered anyway rather than never.
const commitWait = 30 * time.Second
