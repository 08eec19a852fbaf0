package dnsrec

import (
	"slices"
	"testing"

	"github.com/hearthchat/hearth/appliance/config"
)

// The services the setup pages offer are in the registry, take their
// token, and say which setting is missing.
func TestDynDNSProviders(t *testing.T) {
	for name, key := range map[string]string{"desec": "token", "duckdns": "api_token", "cloudflare": "api_token"} {
		if !slices.Contains(ProviderNames(), name) {
			t.Errorf("%s not registered", name)
			continue
		}
		if _, err := NewProvider(config.DNS{Provider: name, Settings: map[string]string{key: "t0ken", "zone": "club.example"}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := NewProvider(config.DNS{Provider: name, Settings: map[string]string{}}); err == nil {
			t.Errorf("%s without %s: no error", name, key)
		}
	}
}
