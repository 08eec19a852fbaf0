//go:build e2e

package netconf

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/netconf/dnsrec"
	"github.com/hearthchat/hearth/netconf/dnsrec/knottest"
	"github.com/hearthchat/hearth/netconf/internal/routerlab"
	"github.com/hearthchat/hearth/netconf/mdns"
	"github.com/hearthchat/hearth/netconf/status"
	"github.com/hearthchat/hearth/netconf/upnp"
)

const (
	inLANEnv  = "HNC_NETCONF_IN_LAN"
	routerWAN = "11.250.44.1"
)

// The box's whole netconf service on a home network whose router is
// Debian's miniupnpd, with UPnP turned on in the settings and the club's
// domain hosted on a DNS server that takes updates (Debian's knot): the
// chat ports and federation's 5269 appear on the router, the domain's
// address follows the router's public address and its server records
// (federation's _xmpp-server ones too) are written, turning federation off
// in the settings takes 5269 off the router, hearth.local is claimed, and
// a factory reset
// leaves nothing behind on the router. The service runs in the lan
// namespace (TestNetconfInLAN, run by this test as a child process).
func TestRouterFromSettings(t *testing.T) {
	if os.Getenv(inLANEnv) != "" {
		t.Skip("the parent test, not run inside the lab")
	}
	l := routerlab.New(t, "hnc-nc", routerWAN+"/24")
	l.StartRouter(0)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := l.LAN.CommandContext(ctx, exe, "-test.run=^TestNetconfInLAN$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), inLANEnv+"="+l.DescURL)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNetconfInLAN") {
		t.Fatalf("inside the lab: %v\n%s", err, out)
	}
	t.Logf("inside the lab:\n%s", out)
	if left := l.List(); routerlab.Listed(left, "tcp", 5222) || routerlab.Listed(left, "tcp", 5223) || routerlab.Listed(left, "tcp", 5269) {
		t.Fatalf("mappings left on the router after the factory reset:\n%s", left)
	}
}

// TestNetconfInLAN is TestRouterFromSettings's inside half; it only runs
// in the lab's lan namespace.
func TestNetconfInLAN(t *testing.T) {
	desc := os.Getenv(inLANEnv)
	if desc == "" {
		t.Skip("runs only inside TestRouterFromSettings's network namespace")
	}
	// knotd on this namespace's own loopback: nothing leaves the lab.
	knot := knottest.Start(t, "club.example.", "@ A 192.0.2.1")

	dir := state.Dir(t.TempDir())
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Domain = "club.example"
	cfg.Net.UPnP = true
	cfg.Net.DNS = config.DNS{Provider: "rfc2136", Settings: knot.Settings()}
	if err := config.Save(dir.Config(), cfg); err != nil {
		t.Fatal(err)
	}
	s := New(Options{State: dir, DNSResolver: knot.Addr})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	wait := func(what string, ok func(status.Report) bool) status.Report {
		t.Helper()
		for end := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			r := s.Report()
			if ok(r) {
				return r
			}
			if time.Now().After(end) {
				j, _ := r.JSON()
				t.Fatalf("timed out waiting for %s; report:\n%s", what, j)
			}
		}
	}
	is := func(r status.Report, id string, l status.Level) bool { c, _ := r.Get(id); return c.Level == l }

	r := wait("the chat and federation ports mapped", func(r status.Report) bool {
		return is(r, upnp.Port{Proto: "tcp", Port: 5222}.CheckID(), status.OK) &&
			is(r, upnp.Port{Proto: "tcp", Port: 5223}.CheckID(), status.OK) &&
			is(r, upnp.Port{Proto: "tcp", Port: 5269}.CheckID(), status.OK)
	})
	if _, ok := r.Get(upnp.Port{Proto: "tcp", Port: 80}.CheckID()); ok {
		t.Error("the web ports were mapped although no certificate is wanted")
	}
	out, _ := exec.Command("upnpc", "-u", desc, "-l").CombinedOutput()
	if !routerlab.Listed(string(out), "tcp", 5222) || !routerlab.Listed(string(out), "tcp", 5223) ||
		!routerlab.Listed(string(out), "tcp", 5269) {
		t.Fatalf("the router does not hold the chat and federation ports:\n%s", out)
	}

	wait("the domain's address updated", func(r status.Report) bool { return is(r, dnsrec.CheckDDNS, status.OK) })
	if got := knot.Lookup(t, "club.example.", dns.TypeA); len(got) != 1 || got[0] != routerWAN {
		t.Fatalf("club.example A = %v, want the router's public address %s", got, routerWAN)
	}
	// The DNS host takes updates, so the server records were written too:
	// other servers find the domain and its services on 5269.
	for _, n := range []string{"club.example.", "groups.club.example.", "upload.club.example."} {
		if got := knot.Lookup(t, "_xmpp-server._tcp."+n, dns.TypeSRV); len(got) != 1 || got[0] != "0 5 5269 club.example." {
			t.Errorf("_xmpp-server._tcp.%s SRV = %v, want 0 5 5269 club.example.", n, got)
		}
	}

	// Settings → federation off: 5269 goes from the router, chat stays.
	cfg.Federation.Off = true
	if err := config.Save(dir.Config(), cfg); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	for end := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ = exec.Command("upnpc", "-u", desc, "-l").CombinedOutput()
		if !routerlab.Listed(string(out), "tcp", 5269) && routerlab.Listed(string(out), "tcp", 5222) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("5269 still mapped (or chat gone) after federation was turned off:\n%s", out)
		}
	}
	wait("hearth.local claimed", func(r status.Report) bool { return is(r, mdns.CheckID, status.OK) })

	// Settings → UPnP off: the mappings go at once.
	cfg.Net.UPnP = false
	if err := config.Save(dir.Config(), cfg); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	wait("UPnP shown as off", func(r status.Report) bool {
		c, _ := r.Get(upnp.CheckRouter)
		return c.Level == status.Off && strings.Contains(c.Message, "turned off")
	})
	out, _ = exec.Command("upnpc", "-u", desc, "-l").CombinedOutput()
	if routerlab.Listed(string(out), "tcp", 5222) {
		t.Fatalf("the mappings stayed after UPnP was turned off:\n%s", out)
	}

	// On again, then a factory reset through the socket, as the setup
	// pages do it.
	cfg.Net.UPnP = true
	if err := config.Save(dir.Config(), cfg); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	wait("the chat ports mapped again", func(r status.Report) bool {
		return is(r, upnp.Port{Proto: "tcp", Port: 5222}.CheckID(), status.OK)
	})
	// A mapping an older version of the box left (a port no longer used).
	if out, err := exec.Command("upnpc", "-u", desc, "-e", "Hearth calls relay", "-a", routerlab.LANAddr,
		"49160", "49160", "UDP", "3600").CombinedOutput(); err != nil {
		t.Fatalf("upnpc -a: %v\n%s", err, out)
	}
	socketPost(t, dir, "/reset")
	out, _ = exec.Command("upnpc", "-u", desc, "-l").CombinedOutput()
	if routerlab.Listed(string(out), "tcp", 5222) || routerlab.Listed(string(out), "tcp", 5223) ||
		routerlab.Listed(string(out), "udp", 49160) {
		t.Fatalf("the mappings stayed after the factory reset:\n%s", out)
	}
}
