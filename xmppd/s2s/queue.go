package s2s

import (
	"errors"
	"strings"
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

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
	st   *server.Stanza
	size int
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
		s.cfg.Server.Bounce(st, &server.StanzaError{Type: "cancel", Condition: "not-allowed", Text: "this box does not talk to " + domain})
		return true
	}
	el := rename(st.El, stream.NSClient, NSServer)
	size := len(el.Append(nil, NSServer))
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
	// A copy, as the server handed it over (jabber:client, for a
	// bounce): hooks after this one may still change the original. It
	// is written in jabber:server.
	r.q = append(r.q, queued{st: &server.Stanza{El: st.El.Copy(), From: st.From, To: st.To, Origin: st.Origin}, size: size})
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
func (s *S2S) retire(r *remote) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(r.q) > 0 && !s.closed {
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
		s.bounceOne(x.st, err)
	}
	if len(q) > 0 {
		s.cfg.Log.Info("s2s: bounced", "domain", r.domain, "stanzas", len(q), "err", err.Error())
	}
}

// bounceOne returns a queued stanza to its sender with err.
func (s *S2S) bounceOne(st *server.Stanza, err error) {
	if st.Origin != nil && st.Origin.Ended() {
		st.Origin = nil // route the error to the account instead
	}
	s.cfg.Server.Bounce(st, err)
}

// run is r's goroutine: connect, write what is queued, reconnect on
// failure with back-off for at most RetryFor, then bounce.
func (s *S2S) run(r *remote) {
	defer s.wg.Done()
	var failingSince time.Time
	delay := s.cfg.RetryMin
	for {
		if s.ctx.Err() != nil {
			s.bounceAll(r, ErrRemoteTimeout)
			s.retire(r)
			return
		}
		l, err := s.connect(r.local, r.domain)
		if err != nil {
			now := time.Now()
			if failingSince.IsZero() {
				failingSince = now
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
		if s.serveLink(r, l) {
			return // idle: closed and retired
		}
	}
}

// serveLink writes r's queue onto an authenticated link until the link
// fails (false: reconnect) or stays idle for IdleTimeout (true: closed and
// r retired).
func (s *S2S) serveLink(r *remote, l *link) bool {
	defer l.close()
	idle := time.NewTimer(s.cfg.IdleTimeout)
	defer idle.Stop()
	for {
		q := s.take(r)
		for i, x := range q {
			err := l.send(x.st.El)
			if errors.Is(err, errTooBig) {
				// It would cost the peer's stream (and what follows it
				// on the wire): its sender learns instead.
				s.bounceOne(x.st, &server.StanzaError{Type: "modify", Condition: "policy-violation", Text: "too large for " + r.domain})
				continue
			}
			if err != nil {
				// Not known to have arrived: kept for the next link (a
				// duplicate is better than a loss).
				s.putBack(r, q[i:])
				s.cfg.Log.Info("s2s: link failed", "domain", r.domain, "err", err)
				return false
			}
		}
		if len(q) > 0 {
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(s.cfg.IdleTimeout)
		}
		select {
		case <-r.wake:
		case <-l.done:
			// The peer closed it (its own idle timeout, a restart):
			// nothing waiting means nothing to reconnect for.
			s.cfg.Log.Debug("s2s: link ended by peer", "domain", r.domain)
			if s.retire(r) {
				return true
			}
			return false
		case <-s.ctx.Done():
			return false
		case <-idle.C:
			if s.retire(r) {
				return true
			}
		}
	}
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
