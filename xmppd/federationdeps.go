package xmppd

import (
	"fmt"
	"strings"

	"github.com/hearthchat/hearth/appliance/config"
)

// The admin pages' federation settings (setup-ui/admin_federation.go)
// reach the running server here. The s2s policy is a function of the
// federation section held in d.s2s.policy, so that a block or allow list
// saved on the page applies to the next stanza and connection without a
// restart (it was read once at start: a domain the admin blocked kept
// reaching members until the next update), and s2s.PolicyChanged applies
// it to what is open: links with a domain now refused close, both ways,
// and what waits for it bounces (not-allowed).
//
// Off is the policy refusing every domain: federation runs all the same
// whenever the options ask for it (startS2S), listener included, so that
// turning it on applies at once as well; before, "on" waited for the next
// start of xmppd. Netconf maps 5269 on the router and publishes the
// _xmpp-server records only while federation is on (netconf.Federates);
// the page asks it to reload itself. While off, a peer that reaches the
// listener anyway (from the home network) is refused at its stream header
// (policy-violation), and members' stanzas to other domains bounce
// not-allowed.

// federationPolicy is the s2s policy: fed now, whatever the admin pages
// save later.
func (d *Daemon) federationPolicy(fed config.Federation) func(domain string) bool {
	d.s2s.policy.Store(compilePolicy(fed))
	return func(domain string) bool { return d.s2s.policy.Load().allows(domain) }
}

// fedPolicy is config.Federation.Allows with its lists in sets: s2s asks
// it for every stanza a peer sends (s2s/policy.go), and Allows walks each
// list, 8.8 µs a stanza with 200 blocked domains (the page's cap) — 9% of
// a core at the 10,000 messages a second hearth → hearth carries. Here a
// domain costs one lookup per label (52 ns; BenchmarkFedPolicy200).
// TestFedPolicyAsConfig holds it to Allows.
type fedPolicy struct {
	off          bool
	block, allow map[string]bool
	onlyAllowed  bool // the allow list is not empty (even if no entry is usable)
}

func compilePolicy(f config.Federation) *fedPolicy {
	return &fedPolicy{off: f.Off, block: set(f.Block), allow: set(f.Allow), onlyAllowed: len(f.Allow) > 0}
}

// set is a list's entries as Allows compares them (lower case, without
// spaces or a trailing dot; empty ones match nothing).
func set(list []string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, e := range list {
		if e = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(e), ".")); e != "" {
			m[e] = true
		}
	}
	return m
}

func (p *fedPolicy) allows(domain string) bool {
	if p.off {
		return false
	}
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if covered(p.block, domain) {
		return false
	}
	return !p.onlyAllowed || covered(p.allow, domain)
}

// covered reports whether domain or a parent of it is in m (an entry
// covers its subdomains).
func covered(m map[string]bool, domain string) bool {
	if len(m) == 0 {
		return false
	}
	for {
		if m[domain] {
			return true
		}
		i := strings.IndexByte(domain, '.')
		if i < 0 {
			return false
		}
		domain = domain[i+1:]
	}
}

// ApplyFederation reads the config's federation section into the running
// server (what the admin page's save calls); now is false when it takes
// effect only at the next start.
func (d *Daemon) ApplyFederation() (now bool, err error) { return d.applyFederation() }

func (d *Daemon) applyFederation() (now bool, err error) {
	c, err := config.Load(d.opts.State.Config())
	if err != nil {
		return false, fmt.Errorf("federation: read the config: %w", err)
	}
	fed := c.Federation
	if d.s2s.fed == nil {
		// Not running (xmppd -s2s none): off stays off; on needs a start
		// with federation.
		return fed.Off, nil
	}
	d.s2s.policy.Store(compilePolicy(fed))
	d.s2s.fed.PolicyChanged()
	return true, nil
}
