package xmppd

import (
	"fmt"

	"github.com/hearthchat/hearth/appliance/config"
)

// The admin pages' federation settings (setup-ui/admin_federation.go)
// reach the running server here. The s2s policy is a function of the
// federation section held in d.s2s.policy, so that a block or allow list
// saved on the page applies to the next stanza and connection without a
// restart (it was read once at start: a domain the admin blocked kept
// reaching members until the next update). Turning federation off applies
// at once as well (the policy then refuses every domain, both ways);
// turning it on needs the s2s listener, which is opened at start only.

// federationPolicy is the s2s policy: fed now, whatever the admin pages
// save later.
func (d *Daemon) federationPolicy(fed config.Federation) func(domain string) bool {
	d.s2s.policy.Store(&fed)
	return func(domain string) bool { return d.s2s.policy.Load().Allows(domain) }
}

// applyFederation reads the config's federation section into the running
// server; now is false when it takes effect only at the next start.
func (d *Daemon) applyFederation() (now bool, err error) {
	c, err := config.Load(d.opts.State.Config())
	if err != nil {
		return false, fmt.Errorf("federation: read the config: %w", err)
	}
	fed := c.Federation
	if d.s2s.fed == nil {
		// Not running: off stays off now; on waits for a start.
		return fed.Off, nil
	}
	d.s2s.policy.Store(&fed)
	return true, nil
}
