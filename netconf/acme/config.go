package acme

import (
	"errors"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/netconf/dnsrec"
	"github.com/hearthchat/hearth/netconf/status"
)

// FromConfig fills Options from the appliance config: the domain, the
// CA's e-mail and directory, and the DNS provider for DNS-01 when one is
// configured. Listen addresses, trust roots and timings keep their
// defaults; the caller may change them before New.
func FromConfig(c *config.Config, st state.Dir, rep status.Reporter) (Options, error) {
	o := Options{
		Domain:    c.Domain,
		Email:     c.Net.ACME.Email,
		Directory: c.Net.ACME.Directory,
		State:     st,
		Reporter:  rep,
	}
	p, err := dnsrec.NewProvider(c.Net.DNS)
	switch {
	case errors.Is(err, dnsrec.ErrNoProvider):
	case err != nil:
		return o, err
	default:
		o.DNS = p
	}
	return o, nil
}
