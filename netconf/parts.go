package netconf

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/netconf/acme"
	"github.com/hearthchat/hearth/netconf/dnsrec"
	"github.com/hearthchat/hearth/netconf/mdns"
	"github.com/hearthchat/hearth/netconf/onion"
	"github.com/hearthchat/hearth/netconf/status"
	"github.com/hearthchat/hearth/netconf/upnp"
)

// partsFor is the one place that decides which parts run for a config.
func (s *Service) partsFor(cfg *config.Config) []part {
	ps := []part{
		{"lan", func(ctx context.Context) error { return watchLAN(ctx, &s.board) }},
		{"selftest", func(ctx context.Context) error { return s.selfTestLoop(ctx, cfg, 30*time.Second) }},
	}
	if s.opts.Local {
		// A laptop running `make run` must not answer for hearth.local on
		// the network it happens to be on.
		mdns.Off(&s.board, "Not announced on the network: this is a test run on a computer.")
	} else {
		ps = append(ps, s.mdnsPart(cfg))
	}
	if s.upnpWanted(cfg) {
		ps = append(ps, s.upnpPart(cfg))
	} else {
		upnp.Disabled(&s.board)
	}
	if cfg.Net.ACME.Enabled && acme.Public(cfg.Domain) {
		ps = append(ps, s.acmePart(cfg))
	} else if acme.Public(cfg.Domain) {
		acme.Off(&s.board, "Getting a certificate is turned off; members' apps will warn about this box's own certificate.")
	} else {
		acme.Off(&s.board, "Certificates from the internet need an internet name; at home the box uses its own.")
	}
	if acme.Public(cfg.Domain) {
		ps = append(ps, part{"dns", func(ctx context.Context) error { return s.watchDNS(ctx, cfg) }})
	}
	if cfg.Net.Tor {
		ps = append(ps, s.onionPart(cfg))
	} else {
		onion.Disabled(&s.board)
	}
	return ps
}

// acmePart gets and renews the certificate xmppd serves. The challenge
// listeners bind the standard ports only while a challenge runs.
func (s *Service) acmePart(cfg *config.Config) part {
	o, err := s.acmeOptions(cfg)
	var m *acme.Manager
	if err == nil {
		m, err = acme.New(o)
	}
	if err != nil {
		return part{"acme", func(context.Context) error {
			s.board.Set(status.Check{ID: acme.CheckID, Title: "Certificate", Level: status.Error,
				Message: "The certificate settings cannot be used.",
				Action:  "Check the domain and the DNS host settings in Settings → Network.",
				Detail:  map[string]string{"error": err.Error()}})
			return err
		}}
	}
	return part{"acme", m.Run}
}

// watchDNS checks the domain's records every hour, against the home's
// addresses as last seen by the router part.
func (s *Service) watchDNS(ctx context.Context, cfg *config.Config) error {
	resolver := s.opts.DNSResolver
	if resolver == "" {
		var err error
		if resolver, err = dnsrec.SystemResolver(); err != nil {
			return err
		}
	}
	records := func() []dnsrec.Record { return dnsrec.Records(s.recordOptions(cfg, s.externalAddrs())) }
	return dnsrec.Watch(ctx, resolver, records, &s.board, time.Hour)
}

// recordOptions are the domain's records for cfg; addrs nil leaves out
// the address records.
func (s *Service) recordOptions(cfg *config.Config, addrs []netip.Addr) dnsrec.Options {
	return dnsrec.Options{Domain: cfg.Domain, Addrs: addrs,
		C2S: s.opts.Ports.C2S, C2STLS: s.opts.Ports.C2STLS, S2S: s.opts.Ports.S2S, NoS2S: !Federates(cfg)}
}

// onionOptions: tor forwards the chat port to xmppd's onion socket, whose
// connections are never treated as local; with federation on, also 5269
// to xmppd's onion s2s socket, and tor opens a SOCKS socket (onion
// addresses only) through which xmppd reaches .onion domains.
func (s *Service) onionOptions(cfg *config.Config) onion.Options {
	o := onion.Options{
		DataDir:        s.opts.State.Tor(),
		Reporter:       &s.board,
		Log:            os.Stderr, // tor's own lines, in the box's log
		DisableNetwork: s.opts.TorOffline,
		Ports:          []onion.Port{{Virtual: s.opts.Ports.C2S, Target: "unix:" + s.opts.State.OnionC2S()}},
	}
	if Federates(cfg) {
		o.Ports = append(o.Ports, onion.Port{Virtual: s.opts.Ports.S2S, Target: "unix:" + s.opts.State.OnionS2S()})
		o.SocksSocket = s.opts.State.TorSocks()
	}
	return o
}

// onionPart publishes the chat server as an onion service.
func (s *Service) onionPart(cfg *config.Config) part {
	svc, err := onion.New(s.onionOptions(cfg))
	if err != nil {
		return part{"onion", func(context.Context) error {
			s.board.Set(status.Check{ID: "onion", Title: "Tor", Level: status.Error,
				Message: "Tor could not be set up on this box.",
				Action:  "Turn Tor off and on again in the settings; if this stays, restore a backup.",
				Detail:  map[string]string{"error": err.Error()}})
			return fmt.Errorf("onion: %w", err)
		}}
	}
	return part{"onion", svc.Run}
}

// mdnsPart answers for hearth.local (or the configured name) so phones at
// home find the setup pages.
func (s *Service) mdnsPart(cfg *config.Config) part {
	r, err := mdns.New(mdns.Options{Hostname: cfg.Net.Hostname, HTTPPort: s.opts.Ports.HTTP, Reporter: &s.board})
	if err != nil {
		return part{"mdns", func(context.Context) error {
			s.board.Set(status.Check{ID: mdns.CheckID, Title: mdns.Title, Level: status.Error,
				Message: "The box's name cannot be used on the home network.",
				Action:  "Give the box a name of letters, digits and hyphens in Settings → Network.",
				Detail:  map[string]string{"error": err.Error()}})
			return err
		}}
	}
	return part{"mdns", r.Run}
}

// upnpWanted: ports are opened on the router only when someone agreed.
func (s *Service) upnpWanted(cfg *config.Config) bool { return cfg.Net.UPnP || s.opts.UPnP }

// upnpOptions are the router client's settings for cfg, shared by the
// running part and the factory reset (which must delete the same ports).
func (s *Service) upnpOptions(cfg *config.Config) upnp.Options {
	// Federation (5269) unless the config turns it off; TURN (3478 and the
	// relay range) when xmppd runs it: calls from outside need the relay
	// ports forwarded to the box.
	return upnp.Options{Ports: s.opts.Ports.Mappings(cfg), Reporter: &s.board, Log: s.opts.Log}
}

// upnpPart keeps the router's port mappings and learns the home's public
// address from it; with a DNS provider configured, the domain's address
// records follow that address (dynamic DNS).
func (s *Service) upnpPart(cfg *config.Config) part {
	o := s.upnpOptions(cfg)
	var updater *dnsrec.Updater
	if cfg.Net.DNS.Provider != "" && acme.Public(cfg.Domain) {
		p, err := dnsrec.NewProvider(cfg.Net.DNS)
		if err != nil {
			s.board.Set(status.Check{ID: dnsrec.CheckDDNS, Title: dnsrec.DDNSTitle(cfg.Domain),
				Level: status.Error, Message: "The DNS host settings cannot be used.",
				Action: "Check the DNS host settings in Settings → Network.",
				Detail: map[string]string{"error": err.Error()}})
		} else {
			uo := dnsrec.UpdaterOptions{Provider: p,
				Zone: dnsrec.Zone(cfg.Net.DNS, cfg.Domain), Name: cfg.Domain, Reporter: &s.board}
			if dnsrec.ServiceRecords(cfg.Net.DNS) {
				// The SRV records (federation's _xmpp-server ones included)
				// and CNAMEs, where the DNS host takes them.
				uo.Records = dnsrec.Records(s.recordOptions(cfg, nil))
			}
			updater = dnsrec.NewUpdater(uo)
		}
	} else {
		s.board.Remove(dnsrec.CheckDDNS)
	}
	// Only the newest address list matters to the updater.
	addrs := make(chan []netip.Addr, 1)
	o.OnExternal = func(a []netip.Addr) {
		s.extMu.Lock()
		s.ext = a
		s.extMu.Unlock()
		select {
		case <-addrs:
		default:
		}
		addrs <- a
	}
	c := upnp.New(o)
	return part{"upnp", func(ctx context.Context) error {
		if updater != nil {
			done := make(chan struct{})
			defer func() { <-done }()
			go func() {
				defer close(done)
				updater.Run(ctx, addrs)
			}()
		}
		return c.Run(ctx)
	}}
}

// FactoryReset removes what netconf put outside the box (the router's port
// mappings) before the state directory is wiped. The parts are stopped
// first so nothing maps the ports again.
func (s *Service) FactoryReset(ctx context.Context) error {
	s.mu.Lock()
	r, cfg := s.parts, s.cfg
	s.mu.Unlock()
	if r != nil {
		r.stop()
	}
	if cfg == nil || !s.upnpWanted(cfg) {
		return nil
	}
	return upnp.New(s.upnpOptions(cfg)).DeleteAll(ctx)
}

// acmeOptions are the certificate manager's options. xmppd's web server
// owns ports 80 and 443 (DESIGN.md: one HTTP server), so by default the
// HTTP-01 listener is the loopback address xmppd forwards
// /.well-known/acme-challenge/ to, and TLS-ALPN-01, which would need 443
// itself, is not used (before, certmagic tried to bind :80 and found
// xmppd there).
func (s *Service) acmeOptions(cfg *config.Config) (acme.Options, error) {
	o, err := acme.FromConfig(cfg, s.opts.State, &s.board)
	if err != nil {
		return o, err
	}
	o.RootCAs = s.opts.ACMERoots
	o.HTTPAddr, o.TLSAddr = s.opts.ACMEHTTPAddr, s.opts.ACMETLSAddr
	if o.HTTPAddr == "" {
		o.HTTPAddr = state.ACMEChallengeAddr
	}
	if s.opts.ACMETLSAddr == "" {
		o.Challenges = []acme.Challenge{acme.DNS01, acme.HTTP01}
	}
	if s.opts.DNSResolver != "" {
		o.DNSResolvers = []string{s.opts.DNSResolver}
	}
	return o, nil
}
