package s2s

// The federation policy (Config.Policy) changes while federation runs:
// the admin blocks a domain, allows only some, or turns federation off or
// on, on the admin pages (xmppd/federationdeps.go). The policy used to be
// asked only when a stanza was queued and when a peer authenticated, so a
// link open before the change kept carrying stanzas both ways until it
// went idle (IdleTimeout; never, for a busy peer), and what was queued
// already still went out. PolicyChanged applies a change to what is open:
//
//   - Outbound (queue.go): the queue of a domain now refused closes its
//     link with a policy-violation stream error, and what waits in it
//     bounces with the policy's error (not-allowed, the one a stanza
//     queued after the change gets from route). A stanza already written
//     on the link is not bounced: our stream error and closing tag follow
//     it, so the peer reads it first (it was delivered).
//   - Inbound: a stream that authenticated a domain now refused is closed
//     with a policy-violation stream error; our peers take that as final
//     (dial.go refusals) and bounce their queue at once.
//   - Between the change and the close, a stanza from a refused domain
//     ends its stream instead of being routed (accept, bidi.go), and a
//     stream whose header names a refused domain is refused before TLS
//     (inConn.open): so a stream authenticated under the old policy, or
//     in the middle of authenticating when it changed, carries nothing.

import (
	"slices"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
)

// allowed applies the federation policy to a domain.
func (s *S2S) allowed(domain string) bool {
	return s.cfg.Policy == nil || s.cfg.Policy(domain)
}

// refusal is the error a stanza for a domain the policy refuses bounces
// with (queued after the change, or waiting when it came).
func refusal(domain string) error {
	return &server.StanzaError{Type: "cancel", Condition: "not-allowed", Text: "this box does not talk to " + domain}
}

// refusedText is the text of the policy-violation stream error that ends
// a stream with a refused domain.
func refusedText(domain string) string { return "this server does not talk to " + domain }

// PolicyChanged applies a change of Config.Policy to the open streams and
// the queues (see above). It returns once the inbound streams to close
// are closed; the queues close their links and bounce on their own
// goroutines, at once.
func (s *S2S) PolicyChanged() {
	type in struct {
		x    *inConn
		doms []string
	}
	var ins []in
	s.mu.Lock()
	close(s.policyCh) // wakes every queue (run, serveLink)
	s.policyCh = make(chan struct{})
	for x := range s.ins {
		ins = append(ins, in{x, slices.Clone(x.doms)})
	}
	s.mu.Unlock()
	// The policy is the caller's function: asked outside our lock.
	// A bidirectional stream we dialled stays open for the peer after
	// its queue let go of it (bidi.go): no queue closes it.
	for _, l := range s.bidi.dialled() {
		if !s.allowed(l.domain) {
			l.refuse(l.domain)
		}
	}
	for _, i := range ins {
		for _, d := range i.doms {
			if !s.allowed(d) {
				i.x.refuse(d)
				break
			}
		}
	}
}

// policyWatch returns a channel closed at the next PolicyChanged.
func (s *S2S) policyWatch() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.policyCh
}

// authedAs records that the stream authenticated domain, where
// PolicyChanged finds it.
func (x *inConn) authedAs(domain string) {
	x.authed[domain] = true
	s := x.s
	s.mu.Lock()
	x.doms = append(x.doms, domain)
	s.ins[x] = struct{}{}
	s.mu.Unlock()
}

// refuse ends an inbound stream whose peer domain the policy now refuses
// (from PolicyChanged's goroutine: its reader sees the connection closed
// and cleans up).
func (x *inConn) refuse(domain string) {
	x.write(session.StreamError("policy-violation", refusedText(domain)))
	x.c.Close()
	x.s.cfg.Log.Info("s2s: inbound stream closed by the federation policy", "domain", domain)
}

// refuse ends a link to a domain the policy now refuses: a stream error
// and our closing tag after what was written, then the connection; its
// reader (ours, or the inbound stream's for a bidirectional one) ends it.
func (l *link) refuse(domain string) {
	// Once: the queue and PolicyChanged may both refuse a dialled
	// bidirectional stream.
	if l.closing.CompareAndSwap(false, true) {
		l.write(session.StreamError("policy-violation", refusedText(domain)))
		l.s.cfg.Log.Info("s2s: link closed by the federation policy", "domain", domain)
	}
	l.c.Close()
}

// dialled returns the bidirectional streams we dialled (their domain is
// set; a peer's inbound stream's is not, PolicyChanged finds those in ins).
func (t *bidiTable) dialled() []*link {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*link
	for _, l := range t.m {
		if l.domain != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}
