// Package presence implements RFC 6121 §3 and §4: subscription requests
// and answers in both directions (the state and its machine belong to the
// roster module, reached as the server's Contacts), presence broadcast to subscribers and the user's own
// resources, probes, directed presence, and unavailable presence when a
// session ends. It records each session's availability and priority, which
// the router uses to choose the recipients of messages.
package presence

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const nsPreApproval = "urn:xmpp:features:pre-approval"

// directedKey holds a session's *directed: the entities it sent directed
// available presence to (RFC 6121 §4.6), which must hear that it left.
type directedKey struct{}

type directed struct {
	mu sync.Mutex
	// to is a list, not a set: a session sends directed presence to a
	// handful of entities (mostly the rooms it is in), and a one-entry
	// map cost ~250 B of live heap per room joined, more than the room's
	// own record of the occupant (issue 12: under 2 KiB per idle
	// occupant; TestDirectedHeap).
	to []string
	// one backs to while it holds one JID (newDirected): one object
	// fewer that a room join keeps.
	one [1]string
}

func newDirected() *directed {
	d := &directed{}
	d.to = d.one[:0:1]
	return d
}

// maxDirected bounds what one session's directed presences keep.
const maxDirected = 1000

// add remembers k (a JID that got available presence); false when the
// list is full.
func (d *directed) add(k string) bool {
	if slices.Contains(d.to, k) {
		return true
	}
	if len(d.to) >= maxDirected {
		return false
	}
	d.to = append(d.to, k)
	return true
}

// remove forgets k (it got unavailable presence).
func (d *directed) remove(k string) {
	if i := slices.Index(d.to, k); i >= 0 {
		d.to = slices.Delete(d.to, i, i+1)
	}
}

// take returns every remembered JID and forgets them.
func (d *directed) take() []string {
	out := slices.Clone(d.to)
	clear(d.to)
	d.to = d.one[:0:1]
	return out
}

// Register plugs presence handling into srv.
func Register(srv *server.Server) {
	p := &mod{srv: srv}
	srv.AddStreamFeature(func(*session.Session) *stream.Element {
		return stream.New(nsPreApproval, "sub")
	})
	srv.Hook(server.PresenceOut, 0, p.out)
	srv.Hook(server.PresenceIn, 0, p.in)
	srv.OnClosed(p.closed)
}

type mod struct{ srv *server.Server }

// out handles presence from a local client.
func (p *mod) out(st *server.Stanza) bool {
	typ := st.Type()
	if st.To.Domainpart() == "" {
		switch typ {
		case "", "unavailable":
			p.broadcast(st)
		case "error", "probe":
			// Nothing to do without an addressee.
		default:
			p.srv.Bounce(st, server.ErrBadRequest)
		}
		return true
	}
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		p.outSubscription(st, typ)
		return true
	case "probe":
		p.clientProbe(st)
		return true
	case "", "unavailable":
		p.rememberDirected(st, typ == "")
		return false // the core routes it (to PresenceIn or another server)
	case "error":
		return false
	default:
		p.srv.Bounce(st, server.ErrBadRequest)
		return true
	}
}

func (p *mod) rememberDirected(st *server.Stanza, available bool) {
	sess := st.Origin
	if st.To.Equal(st.From.Bare()) || st.To.Equal(st.From) {
		return
	}
	// A subscriber hears about the session through broadcasts anyway.
	if available {
		if r, err := p.srv.Contacts().Relation(sess.User, st.To.Bare().String()); err == nil && r.From {
			return
		}
	}
	d, _ := sess.Value(directedKey{}).(*directed)
	if d == nil {
		if !available {
			return
		}
		d = newDirected()
		sess.SetValue(directedKey{}, d)
	}
	d.mu.Lock()
	if available {
		d.add(st.To.String())
	} else {
		d.remove(st.To.String())
	}
	d.mu.Unlock()
}

func takeDirected(sess *session.Session) []string {
	d, _ := sess.Value(directedKey{}).(*directed)
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.take()
}

// priority parses <priority/> (RFC 6121 §4.7.2.3: -128..127, default 0).
func priority(el *stream.Element) int {
	n, err := strconv.Atoi(strings.TrimSpace(el.ChildText(stream.NSClient, "priority")))
	if err != nil {
		return 0
	}
	return max(-128, min(127, n))
}

// broadcast handles presence without 'to' (RFC 6121 §4.2, §4.4, §4.5).
func (p *mod) broadcast(st *server.Stanza) {
	sess := st.Origin
	if st.Type() == "unavailable" {
		if !sess.Available() {
			// Unavailable before initial presence only ends directed
			// presence.
			p.sendDirectedUnavailable(sess, st.El, nil)
			return
		}
		sess.SetPresence(st.El.Copy(), false, 0)
		p.unavailable(sess, st.El)
		return
	}
	wasAvailable := sess.Available()
	el := st.El.Copy()
	sess.SetPresence(el, true, priority(el))
	p.toSubscribersAndSelf(sess, st.El)
	if wasAvailable {
		server.Available.Fire(p.srv, server.Availability{Session: sess})
		return
	}
	// Initial presence (§4.2.2): probe the contacts we are subscribed to,
	// show the other resources, re-deliver pending requests, then let
	// other modules (offline messages) act.
	p.probe(sess)
	for _, o := range p.srv.Router.Sessions(sess.User) {
		if o == sess {
			continue
		}
		if pr, avail, _ := o.Presence(); avail && pr != nil {
			x := pr.Copy()
			x.Set("from", o.JID.String())
			x.Set("to", sess.JID.String())
			sess.Send(x)
		}
	}
	if err := p.srv.Contacts().PendingRequests(sess.User, func(contact string, req []byte) {
		sess.Send(p.request(sess, contact, req))
	}); err != nil {
		p.srv.Log.Error("presence: pending requests", "user", sess.User, "err", err)
	}
	server.Available.Fire(p.srv, server.Availability{Session: sess, Initial: true})
}

// request rebuilds a stored subscription request for delivery.
func (p *mod) request(sess *session.Session, contact string, req []byte) *stream.Element {
	if el, err := stream.ParseElement(req); err == nil && el.Local == "presence" {
		el.Set("to", sess.JID.Bare().String())
		return el
	}
	return stream.New(stream.NSClient, "presence", "type", "subscribe", "from", contact, "to", sess.JID.Bare().String())
}

// toSubscribersAndSelf sends el (from the session's full JID) to every
// contact with a subscription from the user and to the user's available
// resources, the sender included (§4.2.2, §4.4.2). It returns the
// contacts' bare JIDs.
func (p *mod) toSubscribersAndSelf(sess *session.Session, el *stream.Element) map[string]bool {
	sent := map[string]bool{}
	err := p.srv.Contacts().Subscribers(sess.User, func(contact string) {
		x := el.Copy()
		x.Set("from", sess.JID.String())
		x.Set("to", contact)
		sent[contact] = true
		p.srv.Route(x)
	})
	if err != nil {
		p.srv.Log.Error("presence: subscribers", "user", sess.User, "err", err)
	}
	for _, o := range p.srv.Router.Sessions(sess.User) {
		if o == sess || o.Available() {
			x := el.Copy()
			x.Set("from", sess.JID.String())
			x.Set("to", o.JID.String())
			o.Send(x)
		}
	}
	return sent
}

// unavailable tells subscribers, the user's resources and the entities
// that got directed presence that sess went away.
func (p *mod) unavailable(sess *session.Session, el *stream.Element) {
	sent := p.toSubscribersAndSelf(sess, el)
	p.sendDirectedUnavailable(sess, el, sent)
}

func (p *mod) sendDirectedUnavailable(sess *session.Session, el *stream.Element, skip map[string]bool) {
	for _, to := range takeDirected(sess) {
		j, err := jid.Parse(to)
		if err != nil || skip[j.Bare().String()] && j.Resourcepart() == "" {
			continue
		}
		x := el.Copy()
		x.Set("type", "unavailable")
		x.Set("from", sess.JID.String())
		x.Set("to", to)
		p.srv.Route(x)
	}
}

// closed broadcasts unavailable presence for a session that ended without
// saying so (§4.5.3.1), unless a new connection took over its resource:
// that one sends its own presence.
func (p *mod) closed(sess *session.Session) {
	if cur := p.srv.Router.Session(sess.User, sess.JID.Resourcepart()); cur != nil && cur != sess {
		return
	}
	el := stream.New(stream.NSClient, "presence", "type", "unavailable", "from", sess.JID.String())
	if !sess.Available() {
		p.sendDirectedUnavailable(sess, el, nil)
		return
	}
	sess.SetPresence(el, false, 0)
	p.unavailable(sess, el)
}

// probe asks for the presence of the contacts the user is subscribed to
// (§4.3). Local contacts are answered from their sessions at once.
func (p *mod) probe(sess *session.Session) {
	err := p.srv.Contacts().Subscriptions(sess.User, func(contact string) {
		c, err := jid.Parse(contact)
		if err != nil {
			return
		}
		if p.srv.IsLocal(c) {
			p.answerLocal(sess.JID, c)
			return
		}
		p.srv.Route(stream.New(stream.NSClient, "presence", "type", "probe",
			"from", sess.JID.Bare().String(), "to", contact))
	})
	if err != nil {
		p.srv.Log.Error("presence: subscriptions", "user", sess.User, "err", err)
	}
}

// answerLocal sends the presence of local contact c's available resources
// to the prober (a user's full or bare JID), if c lets user see it.
func (p *mod) answerLocal(to jid.JID, c jid.JID) {
	if c.Localpart() == "" {
		return
	}
	back, err := p.srv.Contacts().Relation(c.Localpart(), to.Bare().String())
	if err != nil || !back.From {
		return
	}
	for _, o := range p.srv.Router.Sessions(c.Localpart()) {
		if c.Resourcepart() != "" && o.JID.Resourcepart() != c.Resourcepart() {
			continue
		}
		if pr, avail, _ := o.Presence(); avail && pr != nil {
			x := pr.Copy()
			x.Set("from", o.JID.String())
			x.Set("to", to.String())
			p.srv.Route(x)
		}
	}
}

// clientProbe answers a probe a client sent itself (§4.3.1 says clients
// should not, but some do): only for contacts it is subscribed to.
func (p *mod) clientProbe(st *server.Stanza) {
	contact := st.To.Bare().String()
	r, err := p.srv.Contacts().Relation(st.Origin.User, contact)
	if err != nil || !r.To {
		return
	}
	if p.srv.IsLocal(st.To) {
		p.answerLocal(st.From, st.To)
		return
	}
	p.srv.Route(stream.New(stream.NSClient, "presence", "type", "probe",
		"from", st.From.Bare().String(), "to", st.To.String()))
}
