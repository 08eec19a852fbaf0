package xmppd

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/status"
	"github.com/hearthchat/hearth/xmppd/mod/extdisco"
	"github.com/hearthchat/hearth/xmppd/turn"
)

// TURNOptions configure the calls relay (xmppd/turn) and what XEP-0215
// tells members about it (xmppd/mod/extdisco). The config's turn section
// turns it off and sets the relay range; these are what the program and
// tests decide.
type TURNOptions struct {
	// Listen is the UDP and TCP address (":3478"); "" for no TURN.
	Listen string
	// Host is the name or address XEP-0215 gives members' phones; ""
	// derives it: the domain when it is an internet name, else the
	// box's LAN address as netconf last saw it.
	Host string
	// RelayIP is the relay address told to clients; "" derives it: the
	// home's public address when netconf found one, else the LAN
	// address.
	RelayIP string
	// RelayFirst/RelayLast override the config's relay range (tests).
	RelayFirst, RelayLast int
	// AllowPeers are relayed to whatever the peer policy says (tests put
	// their stand-in peer on 127.0.0.2).
	AllowPeers []netip.Prefix
}

// startTURN runs the STUN/TURN server when configured and hands its
// services to the extdisco module. Without it members' apps see an empty
// list and calls fall back to direct connections.
func (d *Daemon) startTURN() error {
	o := d.opts.TURN
	cfg, err := config.Load(d.opts.State.Config())
	if err != nil {
		return err
	}
	if o.Listen == "" || !cfg.TURN.Enabled {
		return nil
	}
	// Made on this box from crypto/rand the first time, kept with the
	// accounts (config/turn.go says why not in the config file).
	secret, err := d.Store.Secret("turn")
	if err != nil {
		return err
	}
	first, last := cfg.TURN.RelayPorts()
	if o.RelayFirst > 0 {
		first, last = o.RelayFirst, o.RelayLast
	}
	addrs := &boxAddrs{status: filepath.Join(d.opts.State.Status(), "netconf.json")}
	relayIP := func() net.IP {
		if o.RelayIP != "" {
			return net.ParseIP(o.RelayIP)
		}
		return addrs.relayIP()
	}
	srv, err := turn.Start(turn.Config{
		Realm: d.Server.Domain, Secret: secret, Listen: o.Listen,
		RelayFirst: first, RelayLast: last, RelayIP: relayIP,
		Peers: &turn.PeerPolicy{LAN: cfg.TURN.RelayToLAN, Allow: o.AllowPeers, Self: addrs.self},
		AccountOK: func(user string) bool {
			_, gone := removing(d.Store, user)
			return !gone && d.Server.AccountExists(user)
		},
		Log: d.opts.Log,
	})
	if err != nil {
		return err
	}
	d.TURN = srv
	port := srv.Port()
	extdisco.Configure(d.Server, extdisco.Policy{Services: func(user string) []extdisco.Service {
		host := o.Host
		if host == "" {
			host = addrs.host(d.Server.Domain)
		}
		c := srv.Credential(user)
		s := []extdisco.Service{
			{Type: "stun", Transport: "udp", Host: host, Port: port},
			{Type: "turn", Transport: "udp", Host: host, Port: port, Username: c.Username, Password: c.Password, Expires: c.Expires},
			{Type: "turn", Transport: "tcp", Host: host, Port: port, Username: c.Username, Password: c.Password, Expires: c.Expires},
		}
		return s
	}})
	d.opts.Log.Info("turn: listening", "port", port, "relay", fmt.Sprintf("%d-%d", first, last))
	return nil
}

// boxAddrs is what the box knows of its addresses, from netconf's status
// file (the LAN address, the router's, the home's public one) and the
// interfaces, re-read at most every 30 s: the peer policy asks on every
// permission request.
type boxAddrs struct {
	status string

	mu     sync.Mutex
	read   time.Time
	lan    []netip.Addr
	router netip.Addr
	public netip.Addr
	own    []netip.Addr
}

func (b *boxAddrs) refresh() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.read) < 30*time.Second && !b.read.IsZero() {
		return
	}
	b.read = time.Now()
	b.lan, b.router, b.public, b.own = nil, netip.Addr{}, netip.Addr{}, nil
	if data, err := os.ReadFile(b.status); err == nil {
		var r status.Report
		if json.Unmarshal(data, &r) == nil {
			if c, ok := r.Get("lan"); ok {
				for _, f := range strings.Fields(c.Detail["addresses"]) {
					if a, err := netip.ParseAddr(f); err == nil {
						b.lan = append(b.lan, a)
					}
				}
			}
			if c, ok := r.Get("router"); ok {
				host := c.Detail["address"]
				if h, _, err := net.SplitHostPort(host); err == nil {
					host = h
				}
				b.router, _ = netip.ParseAddr(host)
			}
			if c, ok := r.Get("external"); ok && c.Level == status.OK {
				b.public, _ = netip.ParseAddr(c.Detail["address"])
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				b.own = append(b.own, p.Addr())
			}
		}
	}
}

// self is the box's own addresses and the router's: never relayed to.
func (b *boxAddrs) self() []netip.Addr {
	b.refresh()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := append(append([]netip.Addr(nil), b.own...), b.lan...)
	if b.router.IsValid() {
		out = append(out, b.router)
	}
	return out
}

// relayIP is the home's public address when the router forwards to the
// box, else its first IPv4 LAN address; nil when unknown.
func (b *boxAddrs) relayIP() net.IP {
	b.refresh()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.public.IsValid() {
		return b.public.AsSlice()
	}
	if a := b.firstLAN(); a.IsValid() {
		return a.AsSlice()
	}
	return nil
}

func (b *boxAddrs) firstLAN() netip.Addr {
	for _, a := range b.lan {
		if a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

// host is what members' phones are told to reach: the domain when it is
// an internet name (it resolves to the home's address); on a box with
// only a home-network name, its LAN address (phones' WebRTC stacks do not
// all resolve .local names).
func (b *boxAddrs) host(domain string) string {
	if publicName(domain) {
		return domain
	}
	b.refresh()
	b.mu.Lock()
	defer b.mu.Unlock()
	if a := b.firstLAN(); a.IsValid() {
		return a.String()
	}
	return domain
}

// publicName is netconf/acme.Public's rule (not imported: it would bring
// the ACME client into xmppd).
func publicName(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !strings.Contains(name, ".") || net.ParseIP(name) != nil {
		return false
	}
	for _, suf := range []string{".local", ".localhost", ".onion", ".internal", ".lan", ".home.arpa", ".invalid", ".test"} {
		if strings.HasSuffix(name, suf) {
			return false
		}
	}
	return true
}
