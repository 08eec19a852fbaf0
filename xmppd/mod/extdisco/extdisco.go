// Package extdisco is XEP-0215 external service discovery: it tells a
// member's app where the box's STUN/TURN server is, with a TURN
// credential of its own, so calls work across home routers.
//
// Credentials go only to local members asking from their own session: an
// iq from another server (or one the server generates) is answered
// forbidden, since a credential lets its holder relay traffic through the
// home's connection. The services and credentials come from the daemon
// (Configure), which owns the TURN server; without it the list is empty.
package extdisco

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// NS is XEP-0215's namespace.
const NS = "urn:xmpp:extdisco:2"

// Service is one advertised service.
type Service struct {
	Type      string // "stun" or "turn"
	Transport string // "udp" or "tcp"
	Host      string
	Port      int
	Name      string
	// Username, Password and Expires are the credential (TURN only).
	Username, Password string
	Expires            time.Time
}

// Policy is what the daemon provides.
type Policy struct {
	// Services lists the services for a local account, credentials
	// included (made fresh on each call).
	Services func(account string) []Service
}

type key struct{}

type state struct{ policy atomic.Pointer[Policy] }

func get(srv *server.Server) *state {
	return server.State(srv, key{}, func() *state { return &state{} })
}

// Configure installs the daemon's policy; call before clients connect.
func Configure(srv *server.Server, p Policy) { get(srv).policy.Store(&p) }

// Register adds XEP-0215 to the server.
func Register(srv *server.Server) {
	srv.AddFeature(server.ToServer, NS)
	srv.HandleIQ(server.ToServer, "get", NS, "services", func(st *server.Stanza) (*stream.Element, error) {
		return answer(srv, st, "services")
	})
	srv.HandleIQ(server.ToServer, "get", NS, "credentials", func(st *server.Stanza) (*stream.Element, error) {
		return answer(srv, st, "credentials")
	})
}

func answer(srv *server.Server, st *server.Stanza, local string) (*stream.Element, error) {
	// Only a member's own session: st.Origin is nil for stanzas from
	// other servers and for the server's own.
	if st.Origin == nil || !srv.IsLocal(st.From) || st.From.Localpart() == "" {
		return nil, server.ErrForbidden
	}
	q := st.El.FirstChild()
	var list []Service
	if p := get(srv).policy.Load(); p != nil && p.Services != nil {
		list = p.Services(st.From.Localpart())
	}
	out := stream.New(NS, local)
	switch local {
	case "services":
		// XEP-0215 §3.1: an optional type narrows the list.
		want := q.Get("type")
		for _, s := range list {
			if want == "" || want == s.Type {
				out.Add(s.element())
			}
		}
	case "credentials":
		// §3.3: credentials for one service named by host and type
		// (and port/transport when the app says which).
		ask := q.Child(NS, "service")
		if ask == nil || ask.Get("host") == "" {
			return nil, server.ErrBadRequest
		}
		for _, s := range list {
			if s.Host == ask.Get("host") && (ask.Get("type") == "" || ask.Get("type") == s.Type) &&
				(ask.Get("port") == "" || ask.Get("port") == strconv.Itoa(s.Port)) &&
				(ask.Get("transport") == "" || ask.Get("transport") == s.Transport) && s.Username != "" {
				out.Add(s.element())
				return out, nil
			}
		}
		return nil, server.ErrItemNotFound
	}
	return out, nil
}

func (s Service) element() *stream.Element {
	el := stream.New(NS, "service", "type", s.Type, "host", s.Host, "port", strconv.Itoa(s.Port))
	if s.Transport != "" {
		el.Set("transport", s.Transport)
	}
	if s.Name != "" {
		el.Set("name", s.Name)
	}
	if s.Username != "" {
		el.Set("restricted", "1")
		el.Set("username", s.Username)
		el.Set("password", s.Password)
		el.Set("expires", s.Expires.UTC().Format(time.RFC3339))
	}
	return el
}
