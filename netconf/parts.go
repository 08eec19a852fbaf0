package netconf

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/acme"
	"github.com/hearthchat/hearth/netconf/dnsrec"
	"github.com/hearthchat/hearth/netconf/onion"
	"github.com/hearthchat/hearth/netconf/status"
)

// partsFor is the one place that decides which parts run for a config.
func (s *Service) partsFor(cfg *config.Config) []part {
	ps := []part{
		{"lan", func(ctx context.Context) error { return watchLAN(ctx, &s.board) }},
		{"selftest", func(ctx context.Context) error { return s.selfTestLoop(ctx, cfg, 30*time.Second) }},
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
		ps = append(ps, s.onionPart())
	} else {
		onion.Disabled(&s.board)
	}
	return ps
}

// acmePart gets and renews the certificate xmppd serves. The challenge
// listeners bind the standard ports only while a challenge runs.
func (s *Service) acmePart(cfg *config.Config) part {
	o, err := acme.FromConfig(cfg, s.opts.State, &s.board)
	if err == nil {
		o.RootCAs = s.opts.ACMERoots
		o.HTTPAddr, o.TLSAddr = s.opts.ACMEHTTPAddr, s.opts.ACMETLSAddr
		if s.opts.DNSResolver != "" {
			o.DNSResolvers = []string{s.opts.DNSResolver}
		}
	}
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
	records := func() []dnsrec.Record {
		return dnsrec.Records(dnsrec.Options{Domain: cfg.Domain, Addrs: s.externalAddrs(),
			C2S: s.opts.Ports.C2S, C2STLS: s.opts.Ports.C2STLS, S2S: s.opts.Ports.S2S})
	}
	return dnsrec.Watch(ctx, resolver, records, &s.board, time.Hour)
}

// onionPart publishes the chat server as an onion service. tor forwards to
// xmppd's onion socket, whose connections are never treated as local.
func (s *Service) onionPart() part {
	svc, err := onion.New(onion.Options{
		DataDir:        s.opts.State.Tor(),
		Reporter:       &s.board,
		Log:            os.Stderr, // tor's own lines, in the box's log
		DisableNetwork: s.opts.TorOffline,
		Ports:          []onion.Port{{Virtual: s.opts.Ports.C2S, Target: "unix:" + s.opts.State.OnionC2S()}},
	})
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

// FactoryReset removes what netconf put outside the box (the router's port
// mappings) before the state directory is wiped.
func (s *Service) FactoryReset(ctx context.Context) error {
	return nil
}
