package setupui

import (
	"slices"
	"testing"

	"github.com/hearthchat/hearth/netconf/dnsrec"
)

// Every service the reach page offers is one netconf can use.
func TestProvidersKnownToNetconf(t *testing.T) {
	for _, p := range Providers {
		if !slices.Contains(dnsrec.ProviderNames(), p.ID) {
			t.Errorf("setup page offers %q; netconf knows %v", p.ID, dnsrec.ProviderNames())
		}
	}
}
