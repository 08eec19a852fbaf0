package s2s

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Nothing acknowledged is lost across s2s (durable.go): a queued message
// is committed to the store before its sender's acknowledgement covers
// it, and removed once the remote server has taken it or it bounced.
//
// "Taken": RFC 6120 gives s2s no acknowledgements, and a stanza written
// into a connection the peer is closing (its close, or its crash, still
// on the way to us) is gone without an error on our side — the defect
// TestRealPeerDownAndBack hit in 1 to 2 runs in 15. So a written stanza
// stays ours (in memory, and in the store if it is a message) until the
// link has stayed up for unconfirmedFor after the write; if the link ends
// before that, for any reason, it goes back to the front of the queue and
// is written again on the next link. That is at-least-once: a peer that
// took the stanza and then closed within the window gets it twice, which
// beats losing it. XEP-0198 on s2s would make it exact; not done yet.
// unconfirmedFor is far above a round trip on the networks we federate
// over (a stanza's bytes out, the peer's close or reset back), so a stanza
// older than that which raised no error was read by the peer before it
// closed.
const unconfirmedFor = 2 * time.Second

// remote is one remote domain's outgoing queue. It exists while stanzas
// wait for it or a connection to it is open; one goroutine (run) owns the
// connection.
type remote struct {
	local  string // ours: the domain or a hosted service
	domain string
	q      []queued
	bytes  int
	wake   chan struct{} // a stanza was queued
}

type queued struct {
	// st is the stanza as the server handed it over but without its tree
	// (El is nil until a bounce needs it): its sender and session. wire
	// is the tree as written to peers (jabber:server): a queue holds
	// bytes, not trees, so its memory follows what its caps count. A
	// copy of a short message's tree cost 6 times its bytes (592 B live
	// for 97 counted, TestQueuedMemory; 288 B with the bytes), which let
	// the 16 MiB total cap stand for some 90 MiB of short messages.
	st   *server.Stanza
	wire []byte
	size int
	id   uint64    // its store record (durable.go); 0: kept in memory only
	at   time.Time // when it was queued (before a restart, for restored ones)
	// written: it went out on a link that ended within unconfirmedFor
	// (so it most likely arrived)
	written bool
}

// route is the StanzaRemote hook: queue st for its domain.
func (s *S2S) route(st *server.Stanza) bool {
	domain := strings.ToLower(st.To.Domainpart())
	local := strings.ToLower(st.From.Domainpart())
	if local == "" {
		local = s.domain
	}
	if !s.serves(local) {
		// A peer accepts only stanzas from domains we authenticate as;
		// anything else (a component's domain) would end our stream to
		// it with invalid-from.
		s.cfg.Server.Bounce(st, &server.StanzaError{Type: "cancel", Condition: "not-allowed", Text: local + " does not federate"})
		return true
	}
	if !s.allowed(domain) {
		s.cfg.Server.Bounce(st, refusal(domain))
		return true
	}
	// Its bytes, taken now: hooks after this one may still change the
	// original.
	x := queuedOf(st)
	size := x.size
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false // the core bounces it
	}
	key := local + " " + domain
	r := s.remotes[key]
	if r == nil {
		r = &remote{local: local, domain: domain, wake: make(chan struct{}, 1)}
	}
	if len(r.q) >= s.cfg.MaxQueue || r.bytes+size > s.cfg.MaxQueueBytes || s.total+size > s.cfg.MaxTotalBytes ||
		s.remotes[key] == nil && len(s.remotes) >= s.cfg.MaxDomains {
		s.mu.Unlock()
		// Bounded memory: a dead or slow domain (10,000 messages to it)
		// holds at most its cap; the rest go back to their senders now.
		s.cfg.Server.Bounce(st, &server.StanzaError{Type: "wait", Condition: "resource-constraint", Text: "too much waiting for " + domain})
		return true
	}
	// Stored under the lock: its record is enqueued for commit before
	// anything (a write, a bounce) can enqueue its removal.
	s.persist(st, &x, local, domain)
	r.q = append(r.q, x)
	r.bytes += size
	s.total += size
	if s.remotes[key] == nil {
		s.remotes[key] = r
		s.wg.Add(1)
		go s.run(r)
	}
	s.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return true
}

// queuedOf is st as a queue keeps it: its wire bytes, sender and session.
func queuedOf(st *server.Stanza) queued {
	wire := rename(st.El, stream.NSClient, NSServer).Append(nil, NSServer)
	return queued{st: &server.Stanza{From: st.From, To: st.To, Origin: st.Origin}, wire: wire, size: len(wire), at: time.Now()}
}

// take removes and returns everything queued for r.
func (s *S2S) take(r *remote) []queued {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := r.q
	r.q = nil
	s.total -= r.bytes
	r.bytes = 0
	return q
}

// putBack returns unwritten stanzas to the front of r's queue.
func (s *S2S) putBack(r *remote, q []queued) {
	if len(q) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, x := range q {
		n += x.size
	}
	r.q = append(q, r.q...)
	r.bytes += n
	s.total += n
}

// retire removes r if nothing waits for it; false if stanzas arrived.
// Also when closing: what waits is released by run (stored, or bounced),
// not dropped with r (a link that ended as Close closed it lost its
// queue without a word).
func (s *S2S) retire(r *remote) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(r.q) > 0 {
		return false
	}
	delete(s.remotes, r.local+" "+r.domain)
	return true
}

// bounceAll returns every queued stanza to its sender with err. Bounces
// run through the router, which may hand them straight back to a queue
// (a remote sender): never under the lock.
func (s *S2S) bounceAll(r *remote, err error) {
	q := s.take(r)
	for _, x := range q {
		s.bounceOne(x, err)
	}
	if len(q) > 0 {
		s.cfg.Log.Info("s2s: bounced", "domain", r.domain, "stanzas", len(q), "err", err.Error())
	}
}

// bounceOne returns a queued stanza to its sender with err, and drops its
// record once the bounce was routed.
func (s *S2S) bounceOne(x queued, err error) {
	st := x.st
	if st.El == nil {
		el, perr := unwire(x.wire)
		if perr != nil {
			// Our own serialization: cannot happen short of a bug, which
			// the log says rather than a crash.
			s.cfg.Log.Error("s2s: a queued stanza could not be read back for its bounce", "to", st.To.String(), "err", perr)
			s.forget(x)
			return
		}
		st.El = el
	}
	if st.Origin != nil && st.Origin.Ended() {
		st.Origin = nil // route the error to the account instead
	}
	s.cfg.Server.Bounce(st, err)
	s.forget(x)
}

// release is r at shutdown: messages stay in the store for the next start
// (a restart for an update must not bounce what a peer down for a minute
// would have taken); what is kept in memory only bounces as before.
func (s *S2S) release(r *remote) {
	q := s.take(r)
	kept, bounced, written := 0, 0, 0
	for _, x := range q {
		switch {
		case x.id != 0:
			kept++
		case x.written:
			// A presence or iq written just before we stopped (the link
			// ended with us, inside its confirmation window): it most
			// likely arrived, and an error for it would tell its sender
			// the opposite. Before the confirmation window, written was
			// done; it stays so at shutdown.
			written++
		default:
			bounced++
			s.bounceOne(x, ErrRemoteTimeout)
		}
	}
	if len(q) > 0 {
		s.cfg.Log.Info("s2s: stopping", "domain", r.domain, "kept for the next start", kept, "bounced", bounced, "written before", written)
	}
}

// oldest is when r's oldest queued stanza was queued (zero: none).
func (s *S2S) oldest(r *remote) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t time.Time
	for _, x := range r.q {
		if t.IsZero() || x.at.Before(t) {
			t = x.at
		}
	}
	return t
}

// run is r's goroutine: connect, write what is queued, reconnect on
// failure with back-off for at most RetryFor, then bounce.
func (s *S2S) run(r *remote) {
	defer s.wg.Done()
	var failingSince time.Time
	delay := s.cfg.RetryMin
	for {
		if s.ctx.Err() != nil {
			s.release(r)
			s.retire(r)
			return
		}
		pch := s.policyWatch()
		if !s.allowed(r.domain) {
			// The policy changed (policy.go), or refused the domain
			// before a restart that restored its queue: what waits
			// bounces as a stanza queued now would.
			s.bounceAll(r, refusal(r.domain))
			if s.retire(r) {
				return
			}
			continue
		}
		l, err := s.connect(r.local, r.domain)
		if err == nil && !s.allowed(r.domain) {
			l.refuse(r.domain) // refused while we connected
			continue
		}
		if err != nil {
			now := time.Now()
			if failingSince.IsZero() {
				failingSince = now
				// The bound counts from when a stanza was queued, even
				// before a restart (restored queues): kill -9 and a
				// restart every 4 minutes must not keep a message
				// retrying for ever.
				if t := s.oldest(r); !t.IsZero() && t.Before(now) {
					failingSince = t
				}
			}
			var nf *errNotFound
			switch {
			case errors.As(err, &nf):
				s.cfg.Log.Info("s2s: no server", "domain", r.domain, "err", err)
				s.bounceAll(r, server.ErrRemoteNotFound)
			case now.Sub(failingSince)+delay > s.cfg.RetryFor:
				s.cfg.Log.Info("s2s: giving up", "domain", r.domain, "after", now.Sub(failingSince).Round(time.Second), "err", err)
				s.bounceAll(r, ErrRemoteTimeout)
			default:
				s.cfg.Log.Debug("s2s: retrying", "domain", r.domain, "in", delay, "err", err)
				select {
				case <-time.After(delay):
				case <-s.ctx.Done():
				case <-pch: // refused now? (checked above)
				}
				delay = min(2*delay, s.cfg.RetryMax)
				continue
			}
			if s.retire(r) {
				return
			}
			// Stanzas arrived while bouncing: a fresh round for them.
			failingSince, delay = time.Time{}, s.cfg.RetryMin
			continue
		}
		failingSince, delay = time.Time{}, s.cfg.RetryMin
		if s.serveLink(r, l, pch) {
			return // idle: closed and retired
		}
	}
}

// serveLink writes r's queue onto an authenticated link until the link
// fails (false: reconnect) or stays idle for IdleTimeout (true: closed and
// r retired). Written stanzas stay unconfirmed for unconfirmedFor (see
// above): if the link ends meanwhile they are queued again. pch is closed
// when the policy changes: a link to a domain it now refuses is closed
// (false: run bounces what waits).
func (s *S2S) serveLink(r *remote, l *link, pch <-chan struct{}) bool {
	defer l.close()
	idle := time.NewTimer(s.cfg.IdleTimeout)
	defer idle.Stop()
	confirmT := time.NewTimer(time.Hour)
	confirmT.Stop()
	defer confirmT.Stop()
	var sent []written
	// requeue puts what is unconfirmed, then rest, back at the front.
	requeue := func(rest []queued) {
		back := make([]queued, 0, len(sent)+len(rest))
		for _, w := range sent {
			w.x.written = true
			back = append(back, w.x)
		}
		s.putBack(r, append(back, rest...))
		sent = nil
	}
	for {
		if !s.allowed(r.domain) {
			// What was written is followed by our stream error and
			// closing tag, not cut off: the peer reads it first.
			for _, w := range sent {
				s.forget(w.x)
			}
			sent = nil
			l.refuse(r.domain)
			return false
		}
		q := s.take(r)
		for i, x := range q {
			err := l.send(x.wire)
			if errors.Is(err, errTooBig) {
				// It would cost the peer's stream (and what follows it
				// on the wire): its sender learns instead.
				s.bounceOne(x, &server.StanzaError{Type: "modify", Condition: "policy-violation", Text: "too large for " + r.domain})
				continue
			}
			if err != nil {
				// Not known to have arrived: kept for the next link (a
				// duplicate is better than a loss).
				requeue(q[i:])
				s.cfg.Log.Info("s2s: link failed", "domain", r.domain, "err", err)
				return false
			}
			sent = append(sent, written{x: x, at: time.Now()})
		}
		sent = s.confirm(sent)
		if len(sent) > 0 {
			confirmT.Reset(time.Until(sent[0].at.Add(unconfirmedFor)))
		}
		if len(q) > 0 {
			idle.Reset(s.cfg.IdleTimeout)
		}
		select {
		case <-r.wake:
		case <-pch:
			pch = s.policyWatch() // checked at the top
		case <-confirmT.C:
		case <-l.done:
			if !s.allowed(r.domain) {
				// PolicyChanged ended the peer's stream we wrote on: as
				// above, what was written went before its close.
				continue
			}
			// The peer closed it (its own idle timeout, a restart, a
			// crash): what it may not have read goes out again.
			s.cfg.Log.Debug("s2s: link ended by peer", "domain", r.domain, "unconfirmed", len(sent))
			requeue(nil)
			if s.retire(r) {
				return true
			}
			return false
		case <-s.ctx.Done():
			requeue(nil) // messages among them stay stored for the next start
			return false
		case <-idle.C:
			if len(sent) > 0 {
				idle.Reset(s.cfg.IdleTimeout) // not idle until confirmed
				continue
			}
			if s.retire(r) {
				return true
			}
		}
	}
}

// written is a stanza written on a link, not yet known to be taken.
type written struct {
	x  queued
	at time.Time
}

// confirm drops what has been written long enough ago to count as taken
// (and its store record), and the oldest beyond MaxQueue: the memory held
// for a fast link is bounded like a queue.
func (s *S2S) confirm(sent []written) []written {
	cut := time.Now().Add(-unconfirmedFor)
	n := 0
	for n < len(sent) && (sent[n].at.Before(cut) || len(sent)-n > s.cfg.MaxQueue) {
		s.forget(sent[n].x)
		n++
	}
	if n == 0 {
		return sent
	}
	if n == len(sent) {
		return sent[:0]
	}
	return append(sent[:0], sent[n:]...)
}

// Queued reports the stanzas and bytes waiting for all remote domains.
func (s *S2S) Queued() (stanzas, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.remotes {
		stanzas += len(r.q)
	}
	return stanzas, s.total
}

// unwire is a queued stanza's tree again from its wire bytes, in
// jabber:client as the server handed it over (for a bounce). The bytes are
// ours, so the limits only follow from their length.
func unwire(b []byte) (*stream.Element, error) {
	n := len(b) + 1
	p := stream.NewParser(io.MultiReader(strings.NewReader("<s xmlns='"+NSServer+"'>"), bytes.NewReader(b)),
		stream.Limits{MaxBytes: n, MaxElements: n, MaxDepth: n, MaxAttrs: n})
	if ev, err := p.Next(); err != nil || ev.Kind != stream.Open {
		return nil, fmt.Errorf("s2s: queued stanza: no wrapper: %v", err)
	}
	ev, err := p.Next()
	if err != nil {
		return nil, fmt.Errorf("s2s: queued stanza: %w", err)
	}
	if ev.Kind != stream.Stanza {
		return nil, errors.New("s2s: queued stanza: not an element")
	}
	return rename(ev.El, NSServer, stream.NSClient), nil
}
