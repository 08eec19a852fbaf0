// Package contact is XEP-0157 contact addresses: who runs this server, as
// a XEP-0128 form in the server's disco#info. By default these are the
// admin accounts' JIDs, which are also the abuse addresses unless the
// box's config names others (SetAbuse: config.Site.Abuse); a build may
// add more addresses through AddAddresses.
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
	abuse   func() []string
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

// SetAbuse installs where the abuse addresses come from (the box's
// config). It is asked whenever the form is rebuilt (at most every ttl),
// so an edited config shows within that. Entries are URIs; a plain
// e-mail address gets "mailto:". Without a source, or when it names none,
// the admins' XMPP addresses are the abuse addresses: a public server
// should name one (spam reports, blocklist operators look for it), and on
// a family box the admin is whoever handles it.
func SetAbuse(srv *server.Server, fn func() []string) {
	m := of(srv)
	m.mu.Lock()
	m.abuse = fn
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
	if m.abuse != nil {
		for _, a := range m.abuse() {
			if u, ok := uri(a); ok {
				fields["abuse-addresses"] = append(fields["abuse-addresses"], u)
			} else {
				m.srv.Log.Warn("contact: abuse address is neither a URI nor an e-mail address; left out", "address", a)
			}
		}
	}
	users, err := m.srv.Store.Users()
	if err != nil {
		m.srv.Log.Error("contact: list accounts", "err", err)
	}
	var admins []string
	for _, u := range users {
		if a, err := m.srv.Store.Account(u); err == nil && a.Admin {
			admins = append(admins, "xmpp:"+escapeNode(u)+"@"+m.srv.Domain)
		}
	}
	fields["admin-addresses"] = append(fields["admin-addresses"], admins...)
	if len(fields["abuse-addresses"]) == 0 {
		fields["abuse-addresses"] = admins
	}
	for k, v := range fields {
		if len(v) == 0 {
			delete(fields, k)
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

// uri turns a configured address into a URI: one with a scheme stays
// as it is, a bare e-mail address gets "mailto:".
func uri(a string) (string, bool) {
	a = strings.TrimSpace(a)
	if a == "" || strings.ContainsAny(a, " \t\r\n<>\"") {
		return "", false
	}
	scheme, rest, ok := strings.Cut(a, ":")
	if ok && rest != "" && validScheme(scheme) {
		return a, true
	}
	if local, domain, ok := strings.Cut(a, "@"); ok && local != "" && strings.Contains(domain, ".") && !strings.Contains(domain, "@") {
		return "mailto:" + a, true
	}
	return "", false
}

// validScheme is RFC 3986's scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
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
