// Package contact is XEP-0157 contact addresses: who runs this server, as
// a XEP-0128 form in the server's disco#info. By default these are the
// admin accounts' JIDs; a build may add more addresses through
// AddAddresses.
package contact

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	nsData   = "jabber:x:data"
	formType = "http://jabber.org/network/serverinfo"
)

// ttl bounds how stale the admin list may be: it is read from the store at
// most this often, because caps put the form into every login and a scan
// of all accounts per login would cost more than a login itself.
const ttl = 30 * time.Second

type mod struct {
	srv *server.Server

	mu      sync.Mutex
	extra   map[string][]string
	form    *stream.Element
	expires time.Time
}

type modKey struct{}

// of returns the module's state on srv (kept on the server, not in a
// package variable: it was a process-wide map that every server in a test
// binary shared).
func of(srv *server.Server) *mod {
	return server.State(srv, modKey{}, func() *mod { return &mod{srv: srv, extra: map[string][]string{}} })
}

// AddAddresses adds addresses to a XEP-0157 field of srv's form
// ("admin-addresses", "abuse-addresses", "support-addresses", …), as URIs
// ("mailto:…", "xmpp:…", "https://…").
func AddAddresses(srv *server.Server, field string, uris ...string) {
	m := of(srv)
	m.mu.Lock()
	m.extra[field] = append(m.extra[field], uris...)
	m.expires = time.Time{}
	m.mu.Unlock()
}

// Register adds the contact-addresses form.
func Register(srv *server.Server) {
	m := of(srv)
	srv.AddDiscoExtension(func(target server.Target, _ string) []*stream.Element {
		if target != server.ToServer {
			return nil
		}
		if f := m.get(); f != nil {
			return []*stream.Element{f}
		}
		return nil
	})
	srv.OnAccountDeleted(func(string) { m.invalidate() })
}

func (m *mod) invalidate() {
	m.mu.Lock()
	m.expires = time.Time{}
	m.mu.Unlock()
}

// get returns the form (a copy: the caller puts it into a reply tree), nil
// when there is nothing to tell.
func (m *mod) get() *stream.Element {
	m.mu.Lock()
	defer m.mu.Unlock()
	if time.Now().After(m.expires) {
		m.form = m.build()
		m.expires = time.Now().Add(ttl)
	}
	if m.form == nil {
		return nil
	}
	return m.form.Copy()
}

func (m *mod) build() *stream.Element {
	fields := map[string][]string{}
	for k, v := range m.extra {
		fields[k] = append(fields[k], v...)
	}
	users, err := m.srv.Store.Users()
	if err != nil {
		m.srv.Log.Error("contact: list accounts", "err", err)
	}
	for _, u := range users {
		if a, err := m.srv.Store.Account(u); err == nil && a.Admin {
			fields["admin-addresses"] = append(fields["admin-addresses"], "xmpp:"+escapeNode(u)+"@"+m.srv.Domain)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	x := stream.New(nsData, "x", "type", "result")
	x.Add(stream.New(nsData, "field", "var", "FORM_TYPE", "type", "hidden").Add(stream.New(nsData, "value").AddText(formType)))
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		vals := fields[k]
		slices.Sort(vals)
		f := stream.New(nsData, "field", "var", k, "type", "list-multi")
		for _, v := range slices.Compact(vals) {
			f.Add(stream.New(nsData, "value").AddText(v))
		}
		x.Add(f)
	}
	return x
}

// escapeNode percent-encodes a localpart for an xmpp: URI (RFC 5122 §2.2:
// unreserved characters and a few sub-delimiters stay as they are).
func escapeNode(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-._~!$()*+,;=", c) >= 0:
			b = append(b, c)
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}
