// Package carbons is XEP-0280 Message Carbons with the
// urn:xmpp:carbons:rules:0 rules: every resource of an account that
// enabled carbons sees both sides of the account's one-to-one
// conversations, whichever device took part in them.
//
// A message the user sends is copied (<sent/>) to the account's other
// carbons-enabled resources; a message the user receives is copied
// (<received/>) to the carbons-enabled resources RFC 6121 delivery did
// not give it to. Which messages qualify is eligible's job.
package carbons

import (
	"strings"
	"sync"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Namespaces.
const (
	NS        = "urn:xmpp:carbons:2"
	NSRules   = "urn:xmpp:carbons:rules:0"
	nsForward = "urn:xmpp:forward:0"
	nsHints   = "urn:xmpp:hints"
	nsMUCUser = "http://jabber.org/protocol/muc#user"
)

// Priority of the copying hooks. Below blocking's (a refused message is
// never copied) and below 0, where archiving runs, so that a received copy
// carries the stanza-id the archive added to the original.
const Priority = -100

// enabledKey marks a session that enabled carbons (session value: bool).
type enabledKey struct{}

type mod struct {
	srv *server.Server
	// recent correlates errors with the messages they answer (see
	// eligibleError).
	mu     sync.Mutex
	recent map[string]*ring
}

type modKey struct{}

// Register adds carbons to srv.
func Register(srv *server.Server) {
	m := server.State(srv, modKey{}, func() *mod { return &mod{srv: srv, recent: map[string]*ring{}} })
	srv.AddFeature(server.ToServer, NS)
	srv.AddFeature(server.ToServer, NSRules)
	srv.HandleIQ(server.ToAccount, "set", NS, "enable", m.toggle(true))
	srv.HandleIQ(server.ToAccount, "set", NS, "disable", m.toggle(false))
	server.EnableCarbons.On(srv, func(sess *session.Session) { sess.SetValue(enabledKey{}, true) })
	srv.Hook(server.MessageOut, Priority, m.sent)
	srv.Hook(server.MessageFull, Priority, m.received)
	srv.Hook(server.MessageBare, Priority, m.receivedBare)
	srv.OnClosed(m.closed)
	srv.OnAccountDeleted(m.forget)
}

// Enabled reports whether sess enabled carbons.
func Enabled(sess *session.Session) bool {
	on, _ := sess.Value(enabledKey{}).(bool)
	return on
}

// toggle answers <enable/> and <disable/>. Repeating either is not an
// error (§8.1). Only the account's own sessions may ask (§4.1:
// not-allowed for anyone else).
func (m *mod) toggle(on bool) server.IQHandler {
	return func(st *server.Stanza) (*stream.Element, error) {
		if st.Origin == nil || st.To.Localpart() != st.Origin.User || st.To.Resourcepart() != "" {
			return nil, server.ErrNotAllowed
		}
		st.Origin.SetValue(enabledKey{}, on)
		return nil, nil
	}
}

// eligible applies the rules to a message that is not an error.
func eligible(st *server.Stanza, muc string) bool {
	el := st.El
	if el.Child(NS, "private") != nil || el.Child(nsHints, "no-copy") != nil {
		return false
	}
	// A copy is never copied again (a client may forward one by mistake).
	if el.Child(NS, "sent") != nil || el.Child(NS, "received") != nil {
		return false
	}
	// MUC traffic: a room's messages reach the devices that joined, and
	// private messages through a room (marked with muc#user <x/>, or from
	// our own group chat service) concern only the device that joined
	// too; a copy would start a conversation the other devices cannot
	// continue.
	if el.Child(nsMUCUser, "x") != nil {
		return false
	}
	if strings.EqualFold(st.From.Domainpart(), muc) || strings.EqualFold(st.To.Domainpart(), muc) {
		return false
	}
	switch el.Get("type") {
	case "chat":
		return true
	case "", "normal":
		return el.Child(stream.NSClient, "body") != nil || imPayload(el)
	}
	return false // groupchat, headline
}

// imPayload reports whether a normal message without a body carries
// instant-messaging payload: receipts, markers, chat states, end-to-end
// encrypted content.
func imPayload(el *stream.Element) bool {
	for _, c := range el.Children() {
		switch c.Space {
		case "urn:xmpp:receipts", "urn:xmpp:chat-markers:0", "http://jabber.org/protocol/chatstates",
			"eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2", "jabber:x:encrypted", "urn:xmpp:openpgp:0":
			return true
		}
	}
	return false
}

// sent copies a message the user sends to the account's other
// carbons-enabled resources (§7). A message to the account itself is
// left to received: its recipients get the original.
func (m *mod) sent(st *server.Stanza) bool {
	user := st.Origin.User
	if m.srv.IsLocal(st.To) && st.To.Localpart() == user {
		return false
	}
	peer := st.To.Bare().String()
	if st.Type() == "error" {
		if !m.answers(user, peer, st.El.Get("id")) {
			return false
		}
	} else {
		if !eligible(st, m.muc()) {
			return false
		}
		m.remember(user, peer, st.El.Get("id"))
	}
	m.copyTo(user, "sent", st, func(x *session.Session) bool { return x != st.Origin })
	return false
}

// received copies a message for the account to the carbons-enabled
// resources RFC 6121 does not deliver it to (§6): for a full JID, all but
// that resource; for the bare JID, all but the available resources of
// highest non-negative priority (route.go's DeliverBare). It never stops
// the message. The <private/> element is removed from what the recipient
// gets (§7).
func (m *mod) received(st *server.Stanza) bool {
	if !m.srv.IsLocal(st.To) || st.To.Localpart() == "" {
		return false
	}
	user := st.To.Localpart()
	if st.El.Child(NS, "private") != nil {
		defer st.El.RemoveChildren(NS, "private")
	}
	peer := st.From.Bare().String()
	if st.Type() == "error" {
		if !m.answers(user, peer, st.El.Get("id")) {
			return false
		}
	} else if !eligible(st, m.muc()) {
		return false
	} else {
		m.remember(user, peer, st.El.Get("id"))
	}
	skip := map[*session.Session]bool{}
	if st.Origin != nil {
		skip[st.Origin] = true // a message to one's own account
	}
	if res := st.To.Resourcepart(); res != "" && m.srv.Router.HasResource(user, res) {
		skip[m.srv.Router.Session(user, res)] = true
	} else {
		_, top := m.srv.Router.Available(user)
		if len(top) == 0 {
			// Nobody gets it now: it is stored and delivered at the
			// next initial presence; a copy now would come twice.
			return false
		}
		for _, x := range top {
			skip[x] = true
		}
	}
	m.copyTo(user, "received", st, func(x *session.Session) bool { return !skip[x] })
	return false
}

// receivedBare is received for MessageBare, except for a message to a
// resource that is online: route.go gets there only when that resource
// refused it after MessageFull, whose copies already went out. A second
// round would give every other device the copy twice.
func (m *mod) receivedBare(st *server.Stanza) bool {
	if res := st.To.Resourcepart(); res != "" && m.srv.IsLocal(st.To) && m.srv.Router.HasResource(st.To.Localpart(), res) {
		return false
	}
	return m.received(st)
}

// copyTo sends a <sent/> or <received/> copy of st to user's
// carbons-enabled sessions that pick accepts. A copy a session refuses is
// not routed elsewhere: the account's other devices have their own.
func (m *mod) copyTo(user, dir string, st *server.Stanza, pick func(*session.Session) bool) {
	var orig *stream.Element
	for _, x := range m.srv.Router.Sessions(user) {
		if !Enabled(x) || !pick(x) {
			continue
		}
		if orig == nil {
			// A copy of its own: the original may still change (the
			// recipient's copy loses <private/>) while a session writes.
			orig = st.El.Copy()
		}
		w := stream.New(stream.NSClient, "message", "from", x.JID.Bare().String(), "to", x.JID.String())
		if t := st.Type(); t != "" {
			w.Set("type", t)
		}
		w.Add(stream.New(NS, dir).Add(stream.New(nsForward, "forwarded").Add(orig)))
		x.Send(w)
	}
}

func (m *mod) muc() string { return "groups." + m.srv.Domain }

// Errors (rules: "of type error and sent in response to a message that
// was itself eligible"): the module remembers, for accounts with a
// carbons-enabled session, the last few eligible messages per account by
// peer and id; an error from or to that peer with that id is copied too.
// Any other error is not.
const ringSize = 64

type ring struct {
	keys [ringSize]string
	next int
}

func corrKey(peer, id string) string { return peer + "\x00" + id }

func (m *mod) remember(user, peer, id string) {
	if id == "" || len(id) > 256 || !m.anyEnabled(user) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.recent[user]
	if r == nil {
		r = new(ring)
		m.recent[user] = r
	}
	r.keys[r.next] = corrKey(peer, id)
	r.next = (r.next + 1) % ringSize
}

func (m *mod) answers(user, peer, id string) bool {
	if id == "" {
		return false
	}
	k := corrKey(peer, id)
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.recent[user]; r != nil {
		for _, x := range r.keys {
			if x == k {
				return true
			}
		}
	}
	return false
}

func (m *mod) anyEnabled(user string) bool {
	for _, x := range m.srv.Router.Sessions(user) {
		if Enabled(x) {
			return true
		}
	}
	return false
}

// closed forgets an account's correlation once it has no session left.
func (m *mod) closed(sess *session.Session) {
	for _, x := range m.srv.Router.Sessions(sess.User) {
		if x != sess {
			return
		}
	}
	m.forget(sess.User)
}

func (m *mod) forget(user string) {
	m.mu.Lock()
	delete(m.recent, user)
	m.mu.Unlock()
}
