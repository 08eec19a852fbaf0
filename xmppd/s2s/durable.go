package s2s

import (
	"time"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Durable queues (issue 14): the outgoing queues were memory only, so a
// message a member's client had been acknowledged (XEP-0198 <a h/>, or
// the answer to a later iq) was gone after kill -9 or a power cut while
// its domain was down. Now every queued message is stored (store/
// s2squeue.go) and committed before that acknowledgement covers it —
// server.Commit holds the sender's acknowledgements back until the
// record is on disk, without making the sender's reader wait for the
// fsync — and is removed once the peer has taken it (queue.go: written,
// and the link stayed up for unconfirmedFor) or it bounced. At start
// the stored messages are queued again, ahead of anything new, with
// the time they were first queued, so the retry bound (RetryFor) counts
// across restarts.
//
// Only messages: a presence is sent again by its client or answered by
// a probe, an iq's requester times out and asks again, and neither is
// covered by "nothing is lost". Messages the server itself sends (a
// group chat's copies for remote occupants) have no acknowledgement to
// protect: they are stored through the same commit queue without
// waiting.

// durableOn reports whether messages for other domains are stored.
func (s *S2S) durableOn() bool { return s.cfg.Server.Store != nil }

// persist gives x a record and enqueues its commit, for st being routed
// (x holds st's wire bytes; st is read here as the server handed it over,
// before route returns). Called under s.mu, before x joins its queue.
func (s *S2S) persist(st *server.Stanza, x *queued, local, domain string) {
	if !s.durableOn() || st.El.Local != "message" {
		return
	}
	x.id = s.nextID.Add(1)
	rec := &store.S2SQueued{ID: x.id, At: x.at, Local: local, Remote: domain,
		From: x.st.From.String(), To: x.st.To.String(), XML: st.El.Append(nil, "")}
	put := func(tx *bolt.Tx) error { return store.PutS2SQueued(tx, rec) }
	s.pending.Add(1) // under s.mu: Close waits for it (see Close)
	done := func(err error) {
		defer s.pending.Done()
		if err != nil {
			s.cfg.Log.Error("s2s: storing a queued message failed (kept in memory only)", "to", rec.To, "err", err)
		}
	}
	if st.Origin != nil {
		// On the sender's reader: the sender's acknowledgement stops
		// short of this message until done.
		s.cfg.Server.Commit(st, put, done)
		return
	}
	s.cfg.Server.Store.Enqueue(put, done)
}

// forget removes x's record (after the put it follows in the commit queue).
func (s *S2S) forget(x queued) {
	if x.id == 0 {
		return
	}
	s.pending.Add(1)
	id := x.id
	s.cfg.Server.Store.Enqueue(func(tx *bolt.Tx) error { return store.DeleteS2SQueued(tx, id) }, func(err error) {
		defer s.pending.Done()
		if err != nil {
			// Kept: it is sent again after the next start (a duplicate).
			s.cfg.Log.Warn("s2s: removing a sent message's record failed", "err", err)
		}
	})
}

// restore queues the stored messages again (New, before the route hook:
// they go out before anything new for their domain).
func (s *S2S) restore() {
	if !s.durableOn() {
		return
	}
	recs, err := s.cfg.Server.Store.S2SQueue()
	if err != nil {
		s.cfg.Log.Error("s2s: reading the stored queue failed; its messages wait for the next start", "err", err)
		// Numbering goes on above anything possibly stored.
		s.nextID.Store(uint64(time.Now().UnixNano()))
		return
	}
	var bounce []queued
	n := 0
	for _, rec := range recs {
		s.nextID.Store(max(s.nextID.Load(), rec.ID))
		x := queued{id: rec.ID, at: rec.At}
		el, perr := stream.ParseElement(rec.XML)
		from, ferr := jid.Parse(rec.From)
		to, terr := jid.Parse(rec.To)
		if rec.XML == nil || perr != nil || ferr != nil || terr != nil {
			s.cfg.Log.Error("s2s: a stored queued message is unreadable, dropped", "id", rec.ID, "to", rec.To)
			s.forget(x)
			continue
		}
		x.st = &server.Stanza{From: from, To: to}
		x.wire = rename(el, stream.NSClient, NSServer).Append(nil, NSServer)
		x.size = len(x.wire)
		if !s.allowed(rec.Remote) {
			// The policy changed while we were down.
			bounce = append(bounce, x)
			continue
		}
		key := rec.Local + " " + rec.Remote
		r := s.remotes[key]
		if r == nil {
			r = &remote{local: rec.Local, domain: rec.Remote, wake: make(chan struct{}, 1)}
			s.remotes[key] = r
		}
		r.q = append(r.q, x)
		r.bytes += x.size
		s.total += x.size
		n++
	}
	for _, x := range bounce {
		s.bounceOne(x, refusal(x.st.To.Domainpart()))
	}
	if n > 0 {
		s.cfg.Log.Info("s2s: queued again after start", "messages", n, "domains", len(s.remotes))
	}
	// Listed first: a queue's goroutine retires it from the map (under
	// s.mu) while this loop would still be reading the map — the race
	// detector caught it in TestRestoredQueueBound (a restored queue that
	// bounces at once).
	rs := make([]*remote, 0, len(s.remotes))
	for _, r := range s.remotes {
		rs = append(rs, r)
	}
	for _, r := range rs {
		s.wg.Add(1)
		go s.run(r)
	}
}
