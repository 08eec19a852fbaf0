// Package adhoc is XEP-0050 ad-hoc commands for the box's own accounts:
// it lists the commands other modules offer (server.AddCommand) on the
// server's commands node, runs them stage by stage and keeps the short
// sessions between stages. The commands themselves (the invites module's
// XEP-0401 "invite" and "create-account") answer only server.Command.Run.
package adhoc

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// NS is the XEP-0050 namespace (also the node listing the commands).
const NS = "http://jabber.org/protocol/commands"

const nsData = "jabber:x:data"

// Bounds on the sessions kept between stages: a client that starts
// commands and never finishes them cannot grow the server's memory.
const (
	sessionTTL     = 10 * time.Minute
	maxPerUser     = 8
	maxSessionsAll = 1000
)

type session struct {
	user, node string
	expires    time.Time
}

type mod struct {
	srv  *server.Server
	mu   sync.Mutex
	sess map[string]session
}

type modKey struct{}

// Register adds the commands node and the command handler.
func Register(srv *server.Server) {
	m := server.State(srv, modKey{}, func() *mod { return &mod{srv: srv, sess: map[string]session{}} })
	srv.AddFeature(server.ToServer, NS)
	srv.HandleDiscoNode(NS, m.disco)
	srv.HandleIQ(server.ToServer, "set", NS, "command", m.execute)
}

// local returns the account of a local sender, "" for anyone else.
func (m *mod) local(from jid.JID) string {
	if from.Localpart() == "" || !strings.EqualFold(from.Domainpart(), m.srv.Domain) {
		return ""
	}
	return from.Localpart()
}

func (m *mod) visible(user string) []server.Command {
	var out []server.Command
	if user == "" {
		return nil
	}
	for _, c := range m.srv.Commands() {
		if c.Allowed == nil || c.Allowed(user) {
			out = append(out, c)
		}
	}
	return out
}

func (m *mod) disco(from jid.JID, items bool, node string) (*stream.Element, error) {
	if !items {
		q := stream.New("http://jabber.org/protocol/disco#info", "query", "node", node)
		q.Add(stream.New("http://jabber.org/protocol/disco#info", "identity", "category", "automation", "type", "command-list", "name", "Commands"))
		return q, nil
	}
	q := stream.New("http://jabber.org/protocol/disco#items", "query", "node", node)
	for _, c := range m.visible(m.local(from)) {
		q.Add(stream.New("http://jabber.org/protocol/disco#items", "item", "jid", m.srv.Domain, "node", c.Node, "name", c.Name))
	}
	return q, nil
}

func badSession() error {
	return &server.StanzaError{Type: "modify", Condition: "bad-request", Extra: stream.New(NS, "bad-sessionid")}
}

func (m *mod) execute(st *server.Stanza) (*stream.Element, error) {
	user := m.local(st.From)
	if st.Origin == nil || user == "" {
		return nil, server.ErrForbidden
	}
	req := st.El.FirstChild()
	node, action, id := req.Get("node"), req.Get("action"), req.Get("sessionid")
	var cmd *server.Command
	for _, c := range m.srv.Commands() {
		if c.Node == node {
			cmd = &c
			break
		}
	}
	if cmd == nil {
		return nil, server.ErrItemNotFound
	}
	if cmd.Allowed != nil && !cmd.Allowed(user) {
		return nil, server.ErrForbidden
	}
	now := time.Now()
	m.mu.Lock()
	m.sweep(now)
	if id != "" {
		s, ok := m.sess[id]
		if !ok || s.user != user || s.node != node {
			m.mu.Unlock()
			return nil, badSession()
		}
	}
	if action == "cancel" {
		delete(m.sess, id)
		m.mu.Unlock()
		return stream.New(NS, "command", "node", node, "sessionid", id, "status", "canceled"), nil
	}
	if id == "" {
		if !m.room(user) {
			m.mu.Unlock()
			return nil, server.ErrResourceConstraint
		}
		id = newID()
		m.sess[id] = session{user: user, node: node, expires: now.Add(sessionTTL)}
	}
	m.mu.Unlock()
	switch action {
	case "", "execute", "next", "complete":
	default: // prev: our commands have no earlier stage to go back to
		return nil, &server.StanzaError{Type: "modify", Condition: "bad-request", Extra: stream.New(NS, "bad-action")}
	}
	var form *stream.Element
	if x := req.Child(nsData, "x"); x != nil && x.Get("type") == "submit" {
		form = x
	}
	rep, err := cmd.Run(user, form)
	if err != nil || rep.Done {
		m.mu.Lock()
		delete(m.sess, id)
		m.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	out := stream.New(NS, "command", "node", node, "sessionid", id)
	if rep.Done {
		out.Set("status", "completed")
	} else {
		out.Set("status", "executing")
		out.Add(stream.New(NS, "actions", "execute", "complete").Add(stream.New(NS, "complete")))
	}
	if rep.Note != "" {
		out.Add(stream.New(NS, "note", "type", "info").AddText(rep.Note))
	}
	if rep.Form != nil {
		out.Add(rep.Form)
	}
	return out, nil
}

// sweep drops expired sessions (m.mu held).
func (m *mod) sweep(now time.Time) {
	for id, s := range m.sess {
		if now.After(s.expires) {
			delete(m.sess, id)
		}
	}
}

// room reports whether user may open another session (m.mu held).
func (m *mod) room(user string) bool {
	if len(m.sess) >= maxSessionsAll {
		return false
	}
	n := 0
	for _, s := range m.sess {
		if s.user == user {
			n++
		}
	}
	return n < maxPerUser
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
