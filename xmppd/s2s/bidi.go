package s2s

// XEP-0288 bidirectional streams: one TCP connection carries stanzas both
// ways between two domains, instead of one connection per direction.
//
// Outbound (link.go): when the peer's features after TLS offer
// <bidi xmlns='urn:xmpp:features:bidi'/>, we send <bidi xmlns='urn:xmpp:bidi'/>
// before authenticating, and then take stanzas from the peer on our
// outgoing stream. The peer may send only what the stream authenticated,
// reversed (XEP-0288 §2.2): from the domain we connected to (its identity
// rests on our SRV lookup and, with EXTERNAL, its certificate — the same
// grounds dialback itself stands on) to the domain we authenticated as.
//
// Inbound (in.go): we offer the feature after TLS; a peer that asks for it
// has each domain pair it authenticates registered here reversed: with
// SASL EXTERNAL (from our stream header's 'to' to the certificate's
// domain), with dialback (from the 'to' of each db:result we found valid
// to its 'from'). A queue that needs a link to that domain then writes
// on the peer's stream instead of dialling a second connection
// (S2S.connect). A pair the peer never authenticated has no entry, so
// nothing of ours goes out on it for that pair; our services (groups.,
// upload.) dial streams of their own unless the peer authenticated a pair
// with them.
//
// Who closes: a plain outgoing link is closed by its queue once idle. A
// bidirectional stream is used by both sides, so the queue only lets go
// of it; its reader closes it once nothing was read or written on it for
// IdleTimeout (link.read, inConn.serve), or when it fails.

import (
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	nsBidi     = "urn:xmpp:bidi"
	nsBidiFeat = "urn:xmpp:features:bidi"
)

// bidiTable holds the bidirectional streams that may carry stanzas from
// one of our domains to a remote one ("local remote" → link).
type bidiTable struct {
	mu sync.Mutex
	m  map[string]*link
}

func (t *bidiTable) add(local, remote string, l *link) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*link{}
	}
	// The newest wins: a peer that reconnected has left the old one (or
	// will, and its reader drops it then).
	t.m[local+" "+remote] = l
}

// get returns a live stream for the pair, or nil.
func (t *bidiTable) get(local, remote string) *link {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[local+" "+remote]
	if l == nil {
		return nil
	}
	select {
	case <-l.done:
		return nil
	default:
		return l
	}
}

// drop removes every pair l carries (it ended).
func (t *bidiTable) drop(l *link) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.m {
		if v == l {
			delete(t.m, k)
		}
	}
}

// pairs reports the registered pairs ("local remote"), for tests.
func (t *bidiTable) pairs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k := range t.m {
		out = append(out, k)
	}
	return out
}

// BidiPairs lists the domain pairs ("local remote") for which a
// bidirectional stream is open and usable for sending.
func (s *S2S) BidiPairs() []string { return s.bidi.pairs() }

// accept routes a stanza an authenticated peer sent into the server, if
// its 'from' is a domain the stream authenticated and its 'to' is ours;
// else it returns the stream error condition that must end the stream.
func (s *S2S) accept(el *stream.Element, authed func(domain string) bool) (cond, text string) {
	from, err := jid.Parse(el.Get("from"))
	d := strings.ToLower(from.Domainpart())
	if err != nil || !authed(d) {
		return "invalid-from", "stanzas must be from the authenticated domain"
	}
	if !s.allowed(d) {
		// Authenticated under a policy that has changed since (policy.go):
		// PolicyChanged closes the stream; this covers the stanzas in
		// between, and a stream that authenticated while it ran.
		return "policy-violation", refusedText(d)
	}
	to, err := jid.Parse(el.Get("to"))
	if err != nil || el.Get("to") == "" {
		return "improper-addressing", ""
	}
	if !s.serves(strings.ToLower(to.Domainpart())) {
		// Never a relay: a peer may only send to us.
		return "host-unknown", "this server serves " + s.domain
	}
	s.cfg.Server.Route(rename(el, NSServer, stream.NSClient))
	return "", ""
}

// bidiIdle is how long a bidirectional stream may go unused both ways
// before its reader closes it: IdleTimeout, but not less than twice the
// queue's confirmation window (queue.go), since what was written in it
// goes out again if the stream ends first — with a 400 ms IdleTimeout
// (TestBidiIdle) the same messages were written again every 400 ms.
func (s *S2S) bidiIdle() time.Duration { return max(s.cfg.IdleTimeout, 2*unconfirmedFor) }

// isStanza reports whether el is a jabber:server stanza.
func isStanza(el *stream.Element) bool {
	return el.Space == NSServer && (el.Local == "message" || el.Local == "presence" || el.Local == "iq")
}
