package muc

import (
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Room messages share commits (issue 12, bench group chat phase). The
// room archive was written with Store.Batch under the room's mutex, so
// two messages of one room never shared a commit: 180–281 messages a
// second whatever the room size, two fdatasyncs per message, the CPU
// idle. Now a room message is given its sequence number (its stanza-id)
// under the mutex, its archive write joins the store's commit queue
// through server.Commit (the sender's stream-management ack then covers
// it only once committed, as for mod/mam), and the mutex is released;
// the message is fanned out when its commit is done. The room's promises
// stay: nobody sees a message a crash would lose (fan-out after the
// commit), and a room's messages are archived and fanned out in the
// order they were accepted — the room's outbox below is in sequence
// order and is drained only from its head, so a commit that completes
// early (the commit queue reports a failed write before the rest of its
// batch) waits for the ones before it.

// post is one accepted room message on its way out.
type post struct {
	seq  uint64          // archive sequence number; 0: not archived
	out  *stream.Element // as fanned out, stanza-id included
	st   *server.Stanza  // what it answers (bounced if the commit fails)
	meta arcMeta         // the archive's bookkeeping after its commit
	done bool            // committed (or not archived)
	err  error           // the commit's error
	// wake: absent members it names (mentions.go), fired when it is
	// fanned out, i.e. only after its commit succeeded.
	wake []server.Mention
}

// outbox is a room's posts in sequence order. It has its own mutex
// because commits complete on the commit queue's goroutine, which must
// not wait for a room's mutex: a room handler holding it can be waiting
// in Store.Enqueue for space on that very queue.
type outbox struct {
	mu       sync.Mutex
	posts    []*post
	draining bool       // a drain goroutine is started or running
	settled  *sync.Cond // on mu: a post's commit completed (flush)
	// fanned is the highest sequence number fanned out (under the room's
	// mutex): history on join leaves out what is committed but not yet
	// fanned out, which the joiner receives live.
	fanned uint64
}

// postMessage sends out (a groupchat message from r, locked) to r's
// occupants, archived first when archived is true. st is the stanza it
// answers: its sender's acknowledgement waits for the commit. wake are
// the mentions to fire once it is committed.
func (m *Service) postMessage(r *room, st *server.Stanza, out *stream.Element, archived bool, wake ...server.Mention) {
	p := &post{out: out, st: st, wake: wake}
	if archived {
		r.st.arc.Seq++
		p.seq = r.st.arc.Seq
		rec := encodeRecord(m.o.Now().UnixNano(), out.String())
		out.Add(stream.New(nsSID, "stanza-id", "id", stanzaID(p.seq), "by", m.roomJID(r.name)))
		fn := m.appendTx(r.name, p.seq, rec, &p.meta)
		r.ob.mu.Lock()
		r.ob.posts = append(r.ob.posts, p)
		r.ob.mu.Unlock()
		// server.Commit commits at once (before returning, and calling
		// done) for a stanza that is not from a local session.
		m.srv.Commit(st, fn, func(err error) {
			r.ob.mu.Lock()
			p.done, p.err = true, err
			if r.ob.settled != nil {
				r.ob.settled.Broadcast()
			}
			r.ob.mu.Unlock()
			m.kick(r)
		})
	} else {
		p.done = true
		r.ob.mu.Lock()
		r.ob.posts = append(r.ob.posts, p)
		r.ob.mu.Unlock()
	}
	m.drainLocked(r)
}

// appendTx is the archive write of record rec as seq of room name. It
// reads the bookkeeping from the transaction (not from memory): writes of
// the room queued before it may be in the same transaction, or failed.
// It may run more than once (store.Enqueue); *meta gets the result.
func (m *Service) appendTx(name string, seq uint64, rec []byte, meta *arcMeta) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		if tx.Bucket(bucketRooms).Get([]byte(name)) == nil {
			// Destroyed while the write was queued: do not bring its
			// archive back.
			return nil
		}
		next := decodeArcMeta(tx.Bucket(bucketArcMeta).Get([]byte(name)))
		next.Seq = max(next.Seq, seq)
		if next.First == 0 || seq < next.First {
			next.First = seq
		}
		next.Items++
		next.Bytes += int64(len(rec))
		ab, err := tx.Bucket(bucketArchive).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		if err := ab.Put(store.U64(seq), rec); err != nil {
			return err
		}
		// Trim the oldest while over the room's bound (never the new one).
		c := ab.Cursor()
		for k, v := c.First(); k != nil && u64(k) != seq && (next.Items > m.o.ArchiveItems || next.Bytes > m.o.ArchiveBytes); k, v = c.First() {
			next.Items--
			next.Bytes -= int64(len(v))
			if err := c.Delete(); err != nil {
				return err
			}
			if k2, _ := c.First(); k2 != nil {
				next.First = u64(k2)
			}
		}
		*meta = next
		return tx.Bucket(bucketArcMeta).Put([]byte(name), next.encode())
	}
}

// flush waits (r locked) until every message r accepted is committed, and
// fans them out: a change of the room's occupants (join, leave, nick
// change, kick, role or affiliation change) is then seen after the
// messages accepted before it, as when each message was committed under
// the room's mutex — a message sent just before its sender left is not
// fanned out after the leave. Waiting under the room's mutex cannot
// deadlock: a commit's completion takes only the outbox's mutex.
func (m *Service) flush(r *room) {
	r.ob.mu.Lock()
	for {
		pending := false
		for _, p := range r.ob.posts {
			if !p.done {
				pending = true
				break
			}
		}
		if !pending {
			break
		}
		if r.ob.settled == nil {
			r.ob.settled = sync.NewCond(&r.ob.mu)
		}
		r.ob.settled.Wait()
	}
	r.ob.mu.Unlock()
	m.drainLocked(r)
}

// kick starts a drain of r's outbox if its head is ready and none runs.
func (m *Service) kick(r *room) {
	r.ob.mu.Lock()
	start := !r.ob.draining && len(r.ob.posts) > 0 && r.ob.posts[0].done
	if start {
		r.ob.draining = true
	}
	r.ob.mu.Unlock()
	if start {
		go m.drain(r)
	}
}

func (m *Service) drain(r *room) {
	for {
		r.mu.Lock()
		m.drainLocked(r)
		r.mu.Unlock()
		r.ob.mu.Lock()
		again := len(r.ob.posts) > 0 && r.ob.posts[0].done
		r.ob.draining = again
		r.ob.mu.Unlock()
		if !again {
			return
		}
	}
}

// drainLocked fans out (r locked) the posts at the head of r's outbox
// whose commits are done, in order.
func (m *Service) drainLocked(r *room) {
	r.ob.mu.Lock()
	n := 0
	for n < len(r.ob.posts) && r.ob.posts[n].done {
		n++
	}
	ready := make([]*post, n)
	copy(ready, r.ob.posts)
	r.ob.posts = append(r.ob.posts[:0], r.ob.posts[n:]...)
	r.ob.mu.Unlock()
	for _, p := range ready {
		if p.err != nil {
			m.srv.Log.Error("muc: archive", "room", r.name, "err", p.err)
			if p.st != nil && p.st.El.Local == "message" {
				m.bounce(p.st, server.ErrInternal)
			}
			continue
		}
		if p.seq > 0 {
			r.ob.fanned = max(r.ob.fanned, p.seq)
			r.st.arc.First, r.st.arc.Items, r.st.arc.Bytes = p.meta.First, p.meta.Items, p.meta.Bytes
		}
		if r.gone {
			continue
		}
		// The mentions before the occupants' copies: the sender's echo
		// then tells that the mentions have fired (tests wait for it).
		for _, w := range p.wake {
			server.Mentioned.Fire(m.srv, w)
		}
		for _, to := range r.sortedOccupants() {
			m.toOccupant(to, p.out)
		}
	}
}
