// Package moved is XEP-0283 (Moved, urn:xmpp:moved:1) on the contact's
// side: when somebody who moved to a new address asks a Hearth member to
// subscribe from the new address, with a <moved/> naming the old one, the
// server checks the move and switches the member's roster over by itself,
// so that the member has nothing to approve on any of their devices
// (XEP-0283 §4.4, "Server-side processing of inbound moved notification";
// issue 15: "contacts on Hearth that get a subscription request from the
// new address with a valid statement are switched over automatically").
//
// The check, as the XEP says:
//  1. the old address must have an approved subscription to the member's
//     presence (from or both) — else the <moved/> is ignored;
//  2. the server asks the old account's PEP node urn:xmpp:moved:1 for item
//     "current" (from the member's bare JID: a "presence" access model lets
//     a subscriber read it), over federation when the old address is
//     elsewhere;
//  3. its <new-jid/> must be the bare JID the request came from (or the
//     old account answers <gone/> with an xmpp: URI naming it).
//
// On success the request is not delivered: the new address is filed under
// the old one's name and groups with a subscription "from" (a roster push
// to the member's devices), "subscribed" goes back, the old address's
// subscription is revoked ("unsubscribed", so each old address moves only
// once), and when the old one was "both" the member asks the new address
// to subscribe too. On any failure (no statement, another address, an
// error, no answer within verifyTimeout) the request goes on unchanged,
// <moved/> included, as an ordinary subscription request.
//
// The publishing side needs nothing of ours: the moved statement is an
// ordinary PEP item (mod/pep), and the notification an ordinary
// subscription request with a payload.
package moved

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// NS is XEP-0283's namespace, also its PEP node.
const NS = "urn:xmpp:moved:1"

const (
	nsPubsub = "http://jabber.org/protocol/pubsub"
	nsStanza = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// Priority on server.PresenceIn: after blocking (a blocked sender's
// request never starts a check), before the presence module (0).
const Priority = 10

// verifyTimeout bounds the wait for the old server's answer; maxPending
// bounds the checks waiting at once (each holds one presence stanza), so
// a flood of forged notifications costs at most that much memory.
const (
	verifyTimeout = 30 * time.Second
	maxPending    = 1000
)

type mod struct {
	srv *server.Server
	mu  sync.Mutex
	// pending: checks waiting for the old server, by the iq's id.
	pending map[string]*check
	// passing: requests whose check failed, on their way (again) through
	// PresenceIn to the presence module.
	passing map[*stream.Element]bool
}

type check struct {
	st       *server.Stanza
	user     string  // the member (localpart)
	old, new jid.JID // bare
	timer    *time.Timer
}

type stateKey struct{}

// Register hooks inbound subscription requests and the answers to the
// server's statement requests.
func Register(srv *server.Server) {
	m := server.State(srv, stateKey{}, func() *mod {
		return &mod{srv: srv, pending: map[string]*check{}, passing: map[*stream.Element]bool{}}
	})
	srv.Hook(server.PresenceIn, Priority, m.in)
	srv.Hook(server.IQResponse, 100, m.answer)
}

// in starts a check for a subscription request that carries <moved/>.
func (m *mod) in(st *server.Stanza) bool {
	if st.Type() != "subscribe" {
		return false
	}
	mv := st.El.Child(NS, "moved")
	if mv == nil {
		return false
	}
	m.mu.Lock()
	if m.passing[st.El] {
		delete(m.passing, st.El)
		m.mu.Unlock()
		return false
	}
	m.mu.Unlock()
	user := st.To.Localpart()
	newJID := st.From.Bare()
	old, err := jid.Parse(strings.TrimSpace(mv.ChildText(NS, "old-jid")))
	if err != nil || old.Resourcepart() != "" || old.Localpart() == "" || old.Equal(newJID) ||
		newJID.Domainpart() == "" || !m.srv.AccountExists(user) {
		return false
	}
	// §4.3: an old address without an approved subscription: ignore the
	// <moved/> entirely.
	if r, err := m.srv.Contacts().Relation(user, old.String()); err != nil || !r.From {
		return false
	}
	id := newID()
	c := &check{st: st, user: user, old: old, new: newJID}
	m.mu.Lock()
	if len(m.pending) >= maxPending {
		m.mu.Unlock()
		return false
	}
	m.pending[id] = c
	c.timer = time.AfterFunc(verifyTimeout, func() { m.done(id, nil) })
	m.mu.Unlock()
	items := stream.New(nsPubsub, "items", "node", NS).Add(stream.New(nsPubsub, "item", "id", "current"))
	m.srv.Route(stream.New(stream.NSClient, "iq", "type", "get", "id", id,
		"from", user+"@"+m.srv.Domain, "to", old.String()).Add(stream.New(nsPubsub, "pubsub").Add(items)))
	return true
}

// answer takes the old server's answer to a statement request.
func (m *mod) answer(st *server.Stanza) bool {
	id := st.El.Get("id")
	m.mu.Lock()
	c, ok := m.pending[id]
	m.mu.Unlock()
	if !ok {
		return false
	}
	if !st.From.Equal(c.old) || st.To.Localpart() != c.user {
		return true // not from whom it was asked: wait for the real answer
	}
	m.done(id, st)
	return true
}

// done ends check id with the answer (nil: none came in time).
func (m *mod) done(id string, ans *server.Stanza) {
	m.mu.Lock()
	c, ok := m.pending[id]
	delete(m.pending, id)
	m.mu.Unlock()
	if !ok {
		return
	}
	c.timer.Stop()
	if ans != nil && statedNew(ans.El).Equal(c.new) {
		err := m.switchOver(c)
		if err == nil {
			return
		}
		m.srv.Log.Error("moved: switching the roster over", "user", c.user, "old", c.old.String(), "new", c.new.String(), "err", err)
	}
	// Not verified: an ordinary request, <moved/> and all (§4.4).
	m.mu.Lock()
	m.passing[c.st.El] = true
	m.mu.Unlock()
	if !m.srv.Fire(server.PresenceIn, c.st) {
		m.mu.Lock()
		delete(m.passing, c.st.El)
		m.mu.Unlock()
	}
}

// statedNew is the new address an answer to the statement request names:
// the item's <new-jid/>, or the xmpp: URI of a <gone/> error (§4.3's
// note). The zero JID when it names none.
func statedNew(el *stream.Element) jid.JID {
	var s string
	switch el.Get("type") {
	case "result":
		ps := el.Child(nsPubsub, "pubsub")
		if ps == nil {
			return jid.JID{}
		}
		items := ps.Child(nsPubsub, "items")
		if items == nil || items.Get("node") != NS {
			return jid.JID{}
		}
		for _, it := range items.Children() {
			if it.Local != "item" || it.Space != nsPubsub {
				continue
			}
			if mv := it.Child(NS, "moved"); mv != nil {
				s = mv.ChildText(NS, "new-jid")
			}
		}
	case "error":
		if e := el.Child(stream.NSClient, "error"); e != nil {
			if g := e.Child(nsStanza, "gone"); g != nil {
				s, _ = strings.CutPrefix(strings.TrimSpace(g.Text()), "xmpp:")
				s, _, _ = strings.Cut(s, "?")
			}
		}
	}
	j, err := jid.Parse(strings.TrimSpace(s))
	if err != nil || j.Resourcepart() != "" {
		return jid.JID{}
	}
	return j
}

// switchOver does what §4.4 asks once the move is verified.
func (m *mod) switchOver(c *check) error {
	cs := m.srv.Contacts()
	was, err := cs.Relation(c.user, c.old.String())
	if err != nil {
		return err
	}
	if !was.From {
		return nil // revoked meanwhile (a second notification): nothing to move
	}
	userJID := c.user + "@" + m.srv.Domain
	newS, oldS := c.new.String(), c.old.String()
	// The new address under the old one's name and groups.
	if err := cs.Adopt(c.user, oldS, newS); err != nil {
		return err
	}
	// Its request, approved at once: subscription "from".
	if _, err := cs.Subscribe(c.user, newS, "subscribe", false, nil); err != nil {
		return err
	}
	o, err := cs.Subscribe(c.user, newS, "subscribed", true, nil)
	if err != nil {
		return err
	}
	m.srv.Route(stream.New(stream.NSClient, "presence", "type", "subscribed", "from", userJID, "to", newS))
	if o.SendPresence {
		m.presenceTo(c.user, newS, false)
	}
	// The old address loses its subscription: each address moves once.
	if o, err := cs.Subscribe(c.user, oldS, "unsubscribed", true, nil); err != nil {
		return err
	} else if o.Forward {
		m.srv.Route(stream.New(stream.NSClient, "presence", "type", "unsubscribed", "from", userJID, "to", oldS))
		if o.SendUnavailable {
			m.presenceTo(c.user, oldS, true)
		}
	}
	// Mutual before: ask the new address too.
	if was.To {
		if o, err := cs.Subscribe(c.user, newS, "subscribe", true, nil); err != nil {
			return err
		} else if o.Forward {
			m.srv.Route(stream.New(stream.NSClient, "presence", "type", "subscribe", "from", userJID, "to", newS))
		}
	}
	m.srv.Log.Info("moved: contact switched to the new address", "user", c.user, "old", oldS, "new", newS)
	return nil
}

// presenceTo sends the member's current presence (or unavailable) from
// each available resource to contact, as a granted or revoked
// subscription asks (RFC 6121 §3.1.5, §3.3.3).
func (m *mod) presenceTo(user, contact string, unavailable bool) {
	for _, s := range m.srv.Router.Sessions(user) {
		pr, avail, _ := s.Presence()
		if !avail {
			continue
		}
		var x *stream.Element
		if !unavailable && pr != nil {
			x = pr.Copy()
		} else {
			x = stream.New(stream.NSClient, "presence", "type", "unavailable")
		}
		x.Set("from", s.JID.String())
		x.Set("to", contact)
		m.srv.Route(x)
	}
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "moved-" + hex.EncodeToString(b)
}
