package config

import "strings"

// Federation is the server-to-server section (xmppd/s2s): talking to
// other XMPP servers. Open by default: the zero value federates with
// every domain.
type Federation struct {
	// Off stops federation both ways (stanzas to other domains bounce).
	Off bool `json:"off,omitempty"`
	// Block lists domains this box does not talk to (a domain also
	// covers its subdomains).
	Block []string `json:"block,omitempty"`
	// Allow, when not empty, is the only domains this box talks to.
	Allow []string `json:"allow,omitempty"`
}

// Allows reports whether the policy lets this box talk to domain.
func (f Federation) Allows(domain string) bool {
	if f.Off {
		return false
	}
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	for _, b := range f.Block {
		if covers(b, domain) {
			return false
		}
	}
	if len(f.Allow) == 0 {
		return true
	}
	for _, a := range f.Allow {
		if covers(a, domain) {
			return true
		}
	}
	return false
}

// covers reports whether entry names domain or a parent of it.
func covers(entry, domain string) bool {
	entry = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(entry), "."))
	return entry != "" && (domain == entry || strings.HasSuffix(domain, "."+entry))
}
