// Package csi is XEP-0352 client state indication: a phone in a pocket
// says <inactive/>, and until it says <active/> the server holds back what
// it would only wake the radio for — presence updates of contacts and
// standalone chat states and receipts — and sends it all at once, in the
// original order, when something important arrives (a message with a body,
// an error, an iq, a subscription request, anything not known to be noise)
// or the client becomes active again.
//
// What is held and how much:
//   - Presence updates (available or unavailable) are held, and only the
//     latest per sender full JID is kept: a contact toggling ten times
//     costs the phone one stanza. The kept one moves to where the latest
//     arrived, so what is sent is still in arrival order.
//   - Messages with no body, no subject and no encrypted payload whose
//     every child is a chat state, a receipt, a chat marker, a hint, an id
//     or a delay stamp (also inside a carbon copy) are held; of pure chat
//     states only the latest per sender is kept.
//   - Group chat messages are held unless they name the user (a mention)
//     or carry the room's subject; busy rooms then reach a sleeping phone
//     in batches (see MaxHeld) instead of one wake-up per line.
//   - Everything else is sent at once, after whatever was held (so the
//     client sees the same order as without CSI).
//   - At most MaxHeld stanzas and MaxHeldBytes (serialized) are held per
//     session: the next one to hold past either sends them all first. A
//     stanza bigger than a quarter of MaxHeldBytes is not held at all.
//
// Stream management (XEP-0198) counts what is written, so the holding
// happens before the session counts (session.Filter). Nothing held is
// lost: when the session resumes on a new connection the state is active
// again (XEP-0352 §5.2: it is not restored) and the held stanzas follow
// the resent ones; when the session ends, held messages are routed again
// like stanzas it never acknowledged (other resources, offline storage)
// and held presence is dropped, as presence to a gone session is.
package csi

import (
	"strings"
	"sync"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "urn:xmpp:csi:0"

// MaxHeld and MaxHeldBytes bound what is held back per session: a
// hundred presence updates with caps and avatar hashes are about 60 KiB.
// Without the byte bound a sender of large receipts (ids up to the
// parser's 256 KiB stanza limit) could make one session hold 25 MiB.
const (
	MaxHeld      = 100
	MaxHeldBytes = 128 << 10
)

// Namespaces of what counts as noise.
const (
	nsChatStates = "http://jabber.org/protocol/chatstates"
	nsReceipts   = "urn:xmpp:receipts"
	nsMarkers    = "urn:xmpp:chat-markers:0"
	nsHints      = "urn:xmpp:hints"
	nsSID        = "urn:xmpp:sid:0"
	nsDelay      = "urn:xmpp:delay"
	nsCarbons    = "urn:xmpp:carbons:2"
	nsForward    = "urn:xmpp:forward:0"
)

type stateKey struct{}

// state is one session's CSI state (kept on the session, see
// session.Value); it is also the session's filter once the client went
// inactive the first time.
type state struct {
	mu       sync.Mutex
	inactive bool
	ended    bool
	held     []*stream.Element // nil entries were replaced by a newer one
	sizes    []int             // serialized size of each entry of held
	live     int               // non-nil entries of held
	bytes    int               // their serialized size
	latest   map[string]int    // key (see holdable) → index in held
	scratch  []byte            // to weigh a stanza
	user     string            // the account: its name in a group chat is a mention
	reroute  func([]*stream.Element)
	// redeliver routes held messages again when the session ends.
	redeliver func([]*stream.Element)
}

// Register adds the csi stream feature and its nonzas.
func Register(srv *server.Server) {
	srv.AddStreamFeature(func(*session.Session) *stream.Element { return stream.New(ns, "csi") })
	srv.HandleNonza(ns, func(sess *session.Session, el *stream.Element) {
		switch el.Local {
		case "inactive":
			stateOf(srv, sess).setInactive(sess)
		case "active":
			if st, _ := sess.Value(stateKey{}).(*state); st != nil {
				st.setActive(sess)
			}
		default:
			sess.CloseWithError("unsupported-stanza-type", "")
		}
	})
	// XEP-0386: a phone that logs in from the pocket says <inactive/>
	// inside its Bind 2 request, saving the round trip (and the burst of
	// presence that would reach it before a separate nonza). Handled
	// before the session is bound, so not one stanza arrives while it is
	// still active. <active/> is the state a new session has anyway.
	srv.AddBindFeature(server.BindFeature{Var: ns, Handle: func(sess *session.Session, el *stream.Element) {
		if el.Local == "inactive" {
			stateOf(srv, sess).setInactive(sess)
		}
	}})
	srv.OnClosed(func(sess *session.Session) {
		if st, _ := sess.Value(stateKey{}).(*state); st != nil {
			st.end()
		}
	})
}

// stateOf returns sess's state, installing it as the session's filter the
// first time (a session that never goes inactive pays nothing).
func stateOf(srv *server.Server, sess *session.Session) *state {
	if st, _ := sess.Value(stateKey{}).(*state); st != nil {
		return st
	}
	st := &state{latest: map[string]int{}, user: sess.User}
	st.reroute = func(els []*stream.Element) {
		// Not under st.mu and not on the caller's goroutine: a caller of
		// Send may hold locks of its own (see session.SetReroute).
		go srv.Redeliver(sess, els)
	}
	// At the session's end, on the goroutine that ends it, like the
	// stanzas stream management re-routes (smacks): shutdown waits for
	// the close hooks before storage closes.
	st.redeliver = func(els []*stream.Element) { srv.Redeliver(sess, els) }
	sess.SetValue(stateKey{}, st)
	sess.SetFilter(st)
	return st
}

func (st *state) setInactive(*session.Session) {
	st.mu.Lock()
	st.inactive = true
	st.mu.Unlock()
}

func (st *state) setActive(sess *session.Session) {
	st.Resumed(sess.SendDirect)
}

// Resumed makes the state active and sends what was held (session.Filter).
func (st *state) Resumed(send func(*stream.Element) bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.inactive = false
	st.flushLocked(send)
}

// Offer holds el back or sends it, after anything held (session.Filter).
func (st *state) Offer(el *stream.Element, send func(*stream.Element) bool) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.inactive || st.ended {
		return send(el)
	}
	key, ok := holdable(el, st.user)
	if !ok {
		st.flushLocked(send)
		return send(el)
	}
	st.scratch = el.Append(st.scratch[:0], stream.NSClient)
	n := len(st.scratch)
	if cap(st.scratch) > 8<<10 {
		st.scratch = nil
	}
	if n > MaxHeldBytes/4 {
		st.flushLocked(send)
		return send(el)
	}
	if key != "" {
		if i, ok := st.latest[key]; ok {
			st.held[i] = nil
			st.live--
			st.bytes -= st.sizes[i]
			delete(st.latest, key)
		}
	}
	if len(st.held) >= MaxHeld || st.bytes+n > MaxHeldBytes {
		st.compactLocked()
		if len(st.held) >= MaxHeld || st.bytes+n > MaxHeldBytes {
			st.flushLocked(send)
		}
	}
	if key != "" {
		st.latest[key] = len(st.held)
	}
	// Copied: the caller may hand the same element to other sessions
	// (a presence broadcast) and the router's stamping must not reach
	// a stanza held here.
	st.held = append(st.held, el.Copy())
	st.sizes = append(st.sizes, n)
	st.live++
	st.bytes += n
	return true
}

// flushLocked sends everything held, in order. Messages the session
// refuses (it is closing or backlogged) are routed again; refused presence
// is dropped, as it would have been if sent at once.
func (st *state) flushLocked(send func(*stream.Element) bool) {
	if st.live == 0 {
		st.held, st.sizes, st.bytes = st.held[:0], st.sizes[:0], 0
		clear(st.latest)
		return
	}
	var refused []*stream.Element
	for _, el := range st.held {
		if el != nil && !send(el) && el.Local == "message" {
			refused = append(refused, el)
		}
	}
	st.held, st.sizes, st.live, st.bytes = nil, nil, 0, 0
	clear(st.latest)
	if len(refused) > 0 {
		st.reroute(refused)
	}
}

// compactLocked drops the replaced entries from held.
func (st *state) compactLocked() {
	if st.live == len(st.held) {
		return
	}
	out, sizes := st.held[:0], st.sizes[:0]
	clear(st.latest)
	for i, el := range st.held {
		if el == nil {
			continue
		}
		if key, _ := holdable(el, st.user); key != "" {
			st.latest[key] = len(out)
		}
		out = append(out, el)
		sizes = append(sizes, st.sizes[i])
	}
	clear(st.held[len(out):])
	st.held, st.sizes = out, sizes
}

// end: the session is over; held messages are routed again.
func (st *state) end() {
	st.mu.Lock()
	st.ended = true
	var msgs []*stream.Element
	for _, el := range st.held {
		if el != nil && el.Local == "message" {
			msgs = append(msgs, el)
		}
	}
	st.held, st.sizes, st.live, st.bytes = nil, nil, 0, 0
	clear(st.latest)
	st.mu.Unlock()
	if len(msgs) > 0 {
		st.redeliver(msgs)
	}
}

// Held reports how many stanzas sess holds back (tests, admin pages).
func Held(sess *session.Session) int {
	st, _ := sess.Value(stateKey{}).(*state)
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.live
}

// holdable reports whether el may wait while the client is inactive, and
// the key under which only the latest such stanza is kept ("" to keep
// every one).
func holdable(el *stream.Element, user string) (key string, ok bool) {
	switch el.Local {
	case "presence":
		switch el.Get("type") {
		case "", "unavailable":
			// Not a subscription request or an error: those need the
			// user (or the client) now.
			return "p\x00" + el.Get("from"), true
		}
		return "", false
	case "message":
		switch el.Get("type") {
		case "error":
			return "", false
		case "groupchat":
			// Group chat traffic waits unless it names the user (a
			// mention; the account's name stands in for the room nick,
			// which this module cannot know). The room's subject is
			// what ends a join: it goes at once.
			body := el.ChildText(stream.NSClient, "body")
			if body != "" && el.Child(stream.NSClient, "subject") == nil &&
				!strings.Contains(strings.ToLower(body), strings.ToLower(user)) {
				return "", true
			}
		}
		pure, ok := noise(el, 0)
		if !ok {
			return "", false
		}
		if pure {
			return "c\x00" + el.Get("from"), true
		}
		return "", true
	}
	return "", false
}

// noise reports whether message el carries nothing the user would want to
// see now (ok), and whether it is only a chat state (pure: a newer one
// replaces it). depth bounds the look into carbon copies.
func noise(el *stream.Element, depth int) (pure, ok bool) {
	pure = true
	state := false
	for _, c := range el.Children() {
		switch c.Space {
		case nsChatStates:
			state = true
		case nsHints, nsSID, nsDelay:
		case nsReceipts, nsMarkers:
			pure = false
		case nsCarbons:
			// A copy of one's own or another resource's message: noise
			// if what it carries is.
			fwd := c.Child(nsForward, "forwarded")
			if depth > 0 || fwd == nil {
				return false, false
			}
			inner := fwd.Child(stream.NSClient, "message")
			if inner == nil {
				return false, false
			}
			if _, ok := noise(inner, depth+1); !ok {
				return false, false
			}
			pure = false
		default:
			// body, subject, encrypted payloads, OOB, invitations,
			// anything unknown: the user may want it now.
			return false, false
		}
	}
	return pure && state, true
}
