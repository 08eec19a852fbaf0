package netconf

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/acme"
	"github.com/hearthchat/hearth/netconf/status"
)

// selfTest connects to our own public name the way a member's phone on the
// internet would (through the router's hairpin NAT, where it has one) and
// checks that our chat server answers.
func (s *Service) selfTest(ctx context.Context, cfg *config.Config) {
	c := status.Check{ID: "selftest", Title: "Reachable from the internet"}
	if !acme.Public(cfg.Domain) {
		c.Level = status.Off
		c.Message = "This box has no internet name yet, so members can chat only at home" +
			map[bool]string{true: " or over Tor.", false: "."}[cfg.Net.Tor]
		s.board.Set(c)
		return
	}
	addr := s.opts.SelfTestAddr
	if addr == "" {
		addr = net.JoinHostPort(cfg.Domain, strconv.Itoa(s.opts.Ports.C2S))
	}
	c.Level = status.Pending
	c.Message = "Checking whether chat apps on the internet can reach " + cfg.Domain + "…"
	s.board.Set(c)
	err := probeXMPP(ctx, addr, cfg.Domain, "jabber:client")
	c.Detail = map[string]string{"address": addr}
	if err == nil {
		c.Level = status.OK
		c.Message = "Chat apps on the internet can reach " + cfg.Domain + " (checked from this box just now)."
		s.board.Set(c)
	} else {
		c.Level = status.Error
		c.Detail["error"] = err.Error()
		c.Message = "This box could not reach its own chat server at " + cfg.Domain + " the way members outside would."
		c.Action = s.selfTestAdvice(cfg)
		s.board.Set(c)
	}
	s.selfTestFederation(ctx, cfg)
}

// CheckFederation is the ID of the federation self-test.
const CheckFederation = "selftest/federation"

// selfTestFederation checks that other servers can open a server-to-server
// stream to us on the s2s port, as the chat self-test does for apps: with
// xmppd federating, a closed 5269 means messages from other servers never
// arrive and dialback to us fails, which nothing else on the status page
// showed.
func (s *Service) selfTestFederation(ctx context.Context, cfg *config.Config) {
	c := status.Check{ID: CheckFederation, Title: "Reachable by other chat servers"}
	if !Federates(cfg) {
		c.Level = status.Off
		c.Message = "Federation is off: members chat only with people on this box. Turn it on in the settings to talk to other servers."
		s.board.Set(c)
		return
	}
	port := s.opts.Ports.S2S
	addr := s.opts.SelfTestS2SAddr
	if addr == "" {
		addr = net.JoinHostPort(cfg.Domain, strconv.Itoa(port))
	}
	c.Level = status.Pending
	c.Message = "Checking whether other servers can reach " + cfg.Domain + " on port " + strconv.Itoa(port) + "…"
	s.board.Set(c)
	err := probeXMPP(ctx, addr, cfg.Domain, "jabber:server")
	c.Detail = map[string]string{"address": addr}
	if err == nil {
		c.Level = status.OK
		c.Message = fmt.Sprintf("Other servers can reach you on %d: members can chat with people on other servers (checked from this box just now).", port)
		s.board.Set(c)
		return
	}
	c.Level = status.Error
	c.Detail["error"] = err.Error()
	c.Message = fmt.Sprintf("Other servers cannot reach %s on port %d, so messages from people on other servers do not arrive.", cfg.Domain, port)
	c.Action = s.federationAdvice(cfg)
	s.board.Set(c)
}

// federationAdvice: what to do when the s2s port is not reachable.
func (s *Service) federationAdvice(cfg *config.Config) string {
	r := s.board.Report()
	for _, c := range r.Checks {
		if strings.HasPrefix(c.ID, "dns/_xmpp-server.") && c.Level == status.Error {
			return "Fix the DNS records for other servers listed above at your domain host."
		}
	}
	if !cfg.Net.UPnP {
		return fmt.Sprintf("Either allow this box to open its ports on the router (Settings → Network → \"Let Hearth set up the router\"), or in your router's own settings forward TCP port %d to this box.", s.opts.Ports.S2S)
	}
	if c, ok := r.Get("selftest"); ok && c.Level == status.OK {
		return fmt.Sprintf("Chat apps get through but port %d does not: check that your router or internet provider does not block it, or forward TCP port %d to this box by hand.", s.opts.Ports.S2S, s.opts.Ports.S2S)
	}
	return s.selfTestAdvice(cfg)
}

// selfTestAdvice picks the most likely cause from what the other parts found.
func (s *Service) selfTestAdvice(cfg *config.Config) string {
	r := s.board.Report()
	bad := func(id string) bool {
		c, ok := r.Get(id)
		return ok && (c.Level == status.Error || c.Level == status.Warn)
	}
	switch {
	case bad("lan"):
		return "First get the box onto your home network (see above)."
	case bad("external"):
		c, _ := r.Get("external")
		return "Your router has no address of its own on the internet (" + c.Message + "). Turn on Tor in the settings so members can reach the box anyway, or ask your internet provider for a public IPv4 address or IPv6."
	}
	for _, c := range r.Checks {
		if strings.HasPrefix(c.ID, "dns/") && c.Level == status.Error {
			return "Fix the DNS records listed above at your domain host; changes can take an hour to be seen everywhere."
		}
	}
	if !cfg.Net.UPnP {
		ports := fmt.Sprintf("%d and %d", s.opts.Ports.C2S, s.opts.Ports.C2STLS)
		if Federates(cfg) {
			// One list of ports to forward, not a second trip to the
			// router settings for the federation check's advice.
			ports = fmt.Sprintf("%d, %d and %d", s.opts.Ports.C2S, s.opts.Ports.C2STLS, s.opts.Ports.S2S)
		}
		return "Either allow this box to open its ports on the router (Settings → Network → \"Let Hearth set up the router\"), or in your router's own settings forward TCP ports " + ports + " to this box."
	}
	if bad("router") {
		return "The router did not accept the port forwarding (see above). Turn on UPnP in your router's settings, or forward the ports by hand."
	}
	return "Some routers cannot connect to their own internet address (no \"hairpin NAT\"), which makes this test fail even when everything works: ask a member who is not at home to try logging in. If that fails too, restart the router."
}

// probeXMPP opens a stream to addr and checks that an XMPP server for
// domain answers: a port that is open but belongs to something else fails.
// ns is the stream's namespace: jabber:client for apps, jabber:server for
// federation.
func probeXMPP(ctx context.Context, addr, domain, ns string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	fmt.Fprintf(c, "<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>", ns, domain)
	var got []byte
	buf := make([]byte, 2048)
	for len(got) < 16<<10 {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if bytes.Contains(got, []byte("starttls")) || bytes.Contains(got, []byte("<stream:features")) {
			return nil
		}
		if bytes.Contains(got, []byte("host-unknown")) {
			return fmt.Errorf("%s answers, but not for %s", addr, domain)
		}
		if err != nil {
			if len(got) == 0 {
				return fmt.Errorf("%s accepted the connection but sent nothing back: it does not answer like a chat server: %w", addr, err)
			}
			return fmt.Errorf("%s does not answer like a chat server: %w", addr, err)
		}
	}
	return fmt.Errorf("%s does not answer like a chat server", addr)
}

// SelfTest runs the self-test now with the current config.
func (s *Service) SelfTest(ctx context.Context) {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	if cfg == nil {
		cfg = config.Default()
	}
	s.selfTest(ctx, cfg)
}

// selfTestLoop runs the test a little after start (mappings and records
// settle first) and then every six hours.
func (s *Service) selfTestLoop(ctx context.Context, cfg *config.Config, first time.Duration) error {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.selfTest(ctx, cfg)
		t.Reset(6 * time.Hour)
	}
}
