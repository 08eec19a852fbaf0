package xmppd

import (
	"fmt"
	"net"
	"sync/atomic"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/xmppd/s2s"
)

// S2SOptions turn on federation (xmppd/s2s). Off unless Listen or Out is
// set: cmd/xmppd turns it on on the box; tests and `make run` ask for it.
type S2SOptions struct {
	// Listen is the inbound address (":5269"; "" for none), ListenTLS
	// the XEP-0368 direct TLS one ("" for none).
	Listen, ListenTLS string
	// Out sends stanzas for other domains out (implied by Listen).
	Out bool
	// Resolver is a DNS server (host:port) asked instead of the system's
	// (tests with their own zone).
	Resolver string
	// CAFile adds PEM certificates to the roots peers are checked against.
	CAFile string
	// AllowLocal lets peers resolve to loopback and this machine's own
	// addresses (tests on one machine).
	AllowLocal bool
	// Onion is where tor forwards the onion service's port 5269
	// ("unix:PATH", state.Dir.OnionS2S() on the box; "" for none), and
	// TorSOCKS tor's SOCKS5 port for .onion domains ("unix:PATH" or
	// "host:port"; "" : onion domains cannot be reached). s2sonion.go.
	Onion, TorSOCKS string
	// Tune, when set, adjusts the configuration last (tests).
	Tune func(*s2s.Config)
}

type s2sState struct {
	fed           *s2s.S2S
	addr, tlsAddr net.Addr
	// policy is the config's federation section as the admin pages last
	// saved it (federationdeps.go).
	policy atomic.Pointer[fedPolicy]
}

// S2S is the running federation (nil when the options leave it out; with
// federation off in the config it runs, refusing every domain).
func (d *Daemon) S2S() *s2s.S2S { return d.s2s.fed }

// S2SAddr is the bound inbound address (nil without a listener).
func (d *Daemon) S2SAddr() net.Addr { return d.s2s.addr }

// S2STLSAddr is the bound direct TLS inbound address (nil without one).
func (d *Daemon) S2STLSAddr() net.Addr { return d.s2s.tlsAddr }

// startS2S starts federation as the options say, under the policy of the
// config's federation section, read at start and again when the admin
// pages save it (federationdeps.go). With federation off in the config it
// starts too: the policy then refuses every domain.
func (d *Daemon) startS2S() error {
	o := d.opts.S2S
	if o.Listen == "" && o.ListenTLS == "" && !o.Out {
		return nil
	}
	c, err := config.Load(d.opts.State.Config())
	if err != nil {
		d.opts.Log.Warn("federation: config unreadable, using the default policy (open)", "err", err)
		c = config.Default()
	}
	if c.Federation.Off {
		// Started all the same, listener included, with a policy that
		// refuses every domain both ways (federationdeps.go): the admin
		// pages turn it on at once, without a restart (it was not
		// started at all, so "on" waited for the next start of xmppd).
		d.opts.Log.Info("federation: off in the config (refusing every domain until it is turned on)")
	}
	secret, err := d.Store.Secret("dialback")
	if err != nil {
		return fmt.Errorf("federation: %w", err)
	}
	roots, err := s2s.Roots(o.CAFile)
	if err != nil {
		return err
	}
	fed := c.Federation
	cfg := s2s.Config{
		Server: d.Server, Certs: d.Certs, Log: d.opts.Log, Secret: secret, Roots: roots,
		AllowLocal: o.AllowLocal, Policy: d.federationPolicy(fed),
	}
	if o.Resolver != "" {
		cfg.Resolver = s2s.Resolver(o.Resolver)
	}
	cfg.Onion.SOCKS = o.TorSOCKS
	if o.Tune != nil {
		o.Tune(&cfg)
	}
	fedS := s2s.New(cfg)
	d.s2s.fed = fedS
	for _, l := range []struct {
		addr  string
		serve func(net.Listener) error
		out   *net.Addr
	}{
		{o.Listen, fedS.Serve, &d.s2s.addr},
		{o.ListenTLS, fedS.ServeTLS, &d.s2s.tlsAddr},
		{o.Onion, fedS.ServeOnion, new(net.Addr)}, // unix:PATH (s2sonion.go)
	} {
		if l.addr == "" {
			continue
		}
		ln, err := listenS2S(l.addr)
		if err != nil {
			fedS.Close()
			d.s2s.fed = nil
			return fmt.Errorf("s2s listen %s: %w", l.addr, err)
		}
		*l.out = ln.Addr()
		d.lns = append(d.lns, ln)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			l.serve(ln)
		}()
	}
	return nil
}

// stopS2S ends federation: queued messages stay stored for the next start
// (s2s/durable.go); queued presence and iqs bounce to their senders while
// the router still runs.
func (d *Daemon) stopS2S() {
	if d.s2s.fed != nil {
		d.s2s.fed.Close()
	}
}
