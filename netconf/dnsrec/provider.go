package dnsrec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/libdns/cloudflare"
	"github.com/libdns/desec"
	"github.com/libdns/duckdns"
	"github.com/libdns/libdns"
	"github.com/libdns/rfc2136"

	"github.com/hearthchat/hearth/appliance/config"
)

// Provider is what netconf needs from a DNS host: set the address records
// (dynamic DNS) and add and remove TXT records (ACME DNS-01).
type Provider interface {
	libdns.RecordSetter
	libdns.RecordAppender
	libdns.RecordDeleter
}

// providers is the registry: one line per supported DNS host. Settings are
// the provider's own JSON field names (config.Net.DNS.Settings).
var providers = map[string]func(map[string]string) (Provider, error){
	// RFC 2136 dynamic updates with a TSIG key: any standard DNS server
	// (BIND, Knot, PowerDNS…). Settings: server ("ns.example:53"),
	// key_name, key_alg (e.g. "hmac-sha256"), key (base64).
	"rfc2136": fromSettings[rfc2136.Provider]("server", "key_name", "key"),
	// The dynamic-DNS services the setup pages offer (setup-ui/reach.go),
	// each of which also lets DNS-01 add its TXT records.
	// deSEC (dedyn.io names): token.
	"desec": fromSettings[desec.Provider]("token"),
	// Duck DNS (duckdns.org names): api_token.
	"duckdns": fromSettings[duckdns.Provider]("api_token"),
	// Cloudflare (a club's own domain): api_token with Zone → DNS → Edit.
	"cloudflare": fromSettings[cloudflare.Provider]("api_token"),
}

// addressOnly are the providers that hold only a name's address (and TXT)
// records: Duck DNS names cannot have SRV or CNAME records, so the other
// records stay with the person (the DNS checks say what is missing).
var addressOnly = map[string]bool{"duckdns": true}

// ServiceRecords reports whether the configured provider can also write
// the domain's CNAME and SRV records (UpdaterOptions.Records).
func ServiceRecords(c config.DNS) bool { return c.Provider != "" && !addressOnly[c.Provider] }

// ownSettings are keys in config.Net.DNS.Settings that netconf reads
// itself and does not pass to the provider.
var ownSettings = []string{"zone"}

// ProviderNames lists the supported provider names, sorted.
func ProviderNames() []string { return slices.Sorted(maps.Keys(providers)) }

// NewProvider builds the provider the config names. ErrNoProvider when it
// names none (the admin manages records by hand).
func NewProvider(c config.DNS) (Provider, error) {
	if c.Provider == "" {
		return nil, ErrNoProvider
	}
	f, ok := providers[c.Provider]
	if !ok {
		return nil, fmt.Errorf("dnsrec: unknown DNS provider %q (supported: %s)", c.Provider, strings.Join(ProviderNames(), ", "))
	}
	s := maps.Clone(c.Settings)
	for _, k := range ownSettings {
		delete(s, k)
	}
	return f(s)
}

// Zone is the DNS zone that holds domain at the provider: the "zone"
// setting when given (a box at hearth.club.example in zone club.example),
// otherwise the domain itself. The result ends in a dot, as libdns wants.
func Zone(c config.DNS, domain string) string {
	z := c.Settings["zone"]
	if z == "" {
		z = domain
	}
	return normName(z) + "."
}

// fromSettings makes a provider of type T from settings by way of its JSON
// field names, rejecting unknown keys (a typo in a key name should say so,
// not fail later as "not authorized") and missing required ones.
func fromSettings[T any, PT interface {
	*T
	Provider
}](required ...string) func(map[string]string) (Provider, error) {
	return func(s map[string]string) (Provider, error) {
		for _, k := range required {
			if s[k] == "" {
				return nil, fmt.Errorf("dnsrec: DNS provider setting %q is missing", k)
			}
		}
		b, err := json.Marshal(s)
		if err != nil {
			return nil, err
		}
		p := PT(new(T))
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(p); err != nil {
			return nil, fmt.Errorf("dnsrec: DNS provider settings: %w", err)
		}
		return p, nil
	}
}
