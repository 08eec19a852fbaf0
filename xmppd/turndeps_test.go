package xmppd

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hearthchat/hearth/netconf/status"
)

// TestBoxAddrs: what members are told and what the relay refuses come
// from netconf's status file: the LAN address for a home-only name, the
// domain for an internet one, the public address as the relay address
// once the router reported one, and the router among the box's own
// addresses (never relayed to).
func TestBoxAddrs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netconf.json")
	b := &boxAddrs{status: path}
	// Before netconf wrote anything: the domain, no relay address.
	if h := b.host("hearth.local"); h != "hearth.local" {
		t.Errorf("no status: host %q", h)
	}
	if ip := b.relayIP(); ip != nil {
		t.Errorf("no status: relay %v", ip)
	}
	r := status.Report{Checks: []status.Check{
		{ID: "lan", Level: status.OK, Detail: map[string]string{"interface": "eth0", "addresses": "fd00::5 192.168.1.10"}},
		{ID: "router", Level: status.OK, Detail: map[string]string{"address": "192.168.1.1"}},
		{ID: "external", Level: status.OK, Detail: map[string]string{"address": "203.0.113.7", "kind": "public"}},
	}}
	data, _ := json.Marshal(r)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	b = &boxAddrs{status: path}
	for domain, want := range map[string]string{
		"hearth.local": "192.168.1.10", "hearth.localhost": "192.168.1.10", "xyz.onion": "192.168.1.10",
		"chat.example.org": "chat.example.org",
	} {
		if h := b.host(domain); h != want {
			t.Errorf("host(%s) = %q, want %q", domain, h, want)
		}
	}
	if ip := b.relayIP(); ip.String() != "203.0.113.7" {
		t.Errorf("relay %v, want the public address", ip)
	}
	self := b.self()
	for _, a := range []string{"192.168.1.1", "192.168.1.10", "fd00::5"} {
		if !slices.Contains(self, netip.MustParseAddr(a)) {
			t.Errorf("%s not among the box's own addresses %v", a, self)
		}
	}
	// A shared (CGNAT) address is no use as a relay address: the LAN one.
	r.Checks[2] = status.Check{ID: "external", Level: status.Error, Detail: map[string]string{"address": "100.64.3.4", "kind": "cgnat"}}
	data, _ = json.Marshal(r)
	os.WriteFile(path, data, 0o600)
	b = &boxAddrs{status: path}
	if ip := b.relayIP(); ip.String() != "192.168.1.10" {
		t.Errorf("relay behind CGNAT %v, want the LAN address", ip)
	}
}
