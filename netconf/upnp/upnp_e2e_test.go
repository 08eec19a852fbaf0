//go:build e2e

package upnp

import (
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/netconf/internal/routerlab"
	"github.com/hearthchat/hearth/netconf/status"
)

var chat = Port{"tcp", 5222, "Hearth chat"}

// Mappings appear on the router, a peer outside reaches us through them,
// short leases are renewed, a refused port gets its own plain-words
// error, and everything is deleted when the client stops.
func TestMapReachRenewDelete(t *testing.T) {
	l := newLab(t, wanRouter+"/24")
	// secure_mode off lets upnpc give port 5269 to another device first.
	l.StartRouter(0, "secure_mode=no")
	s2s := Port{"tcp", 5269, "Hearth federation"}
	l.Upnpc("-e", "game console", "-a", "192.168.77.9", "5269", "5269", "TCP", "3600")
	calls := Port{"udp", 3478, "Hearth calls"}
	web := Port{"tcp", 80, "Hearth web"} // below 1024: the router's rules forbid it
	c := l.startClient(helperOpts{Ports: []Port{chat, calls, web, s2s}, Lease: 4 * time.Second,
		RetryMin: time.Second, RetryMax: 2 * time.Second, Listen: []int{5222}})

	r := c.wait("mappings", 20*time.Second, func(r status.Report) bool {
		return level(r, chat.CheckID()) == status.OK && level(r, calls.CheckID()) == status.OK &&
			level(r, web.CheckID()) == status.Error && level(r, s2s.CheckID()) == status.Error &&
			level(r, CheckExternal) == status.OK
	})
	rc, _ := r.Get(CheckRouter)
	if rc.Level != status.OK || rc.Detail["address"] != routerLAN || rc.Detail["service"] != "WANIPConnection:2" || rc.Detail["lan_address"] != lanAddr {
		t.Errorf("router check: %+v", rc)
	}
	ec, _ := r.Get(CheckExternal)
	if ec.Detail["address"] != wanRouter || ec.Detail["kind"] != "public" || !strings.Contains(ec.Message, wanRouter) {
		t.Errorf("external check: %+v", ec)
	}
	mc, _ := r.Get(chat.CheckID())
	if mc.Detail["lease"] != "4" || mc.Detail["internal"] != lanAddr+":5222" || mc.Detail["external"] != wanRouter+":5222" || mc.Action != "" {
		t.Errorf("mapping check: %+v", mc)
	}
	// miniupnpd answers a port its rules forbid with 606.
	wc, _ := r.Get(web.CheckID())
	if wc.Detail["code"] != "606" || !strings.Contains(wc.Message, "port 80") || !strings.Contains(wc.Action, "settings page") || strings.Contains(wc.Message, "606") {
		t.Errorf("refused mapping check: %+v", wc)
	}
	// A port already forwarded to another device: 718, and we say which.
	sc, _ := r.Get(s2s.CheckID())
	if sc.Detail["code"] != "718" || sc.Detail["other_device"] != "192.168.77.9" || !strings.Contains(sc.Message, "another device (192.168.77.9)") || sc.Action == "" {
		t.Errorf("conflicting mapping check: %+v", sc)
	}

	out := l.List()
	if !routerlab.Listed(out, "tcp", 5222) || !routerlab.Listed(out, "udp", 3478) || routerlab.Listed(out, "tcp", 80) {
		t.Fatalf("upnpc -l does not show exactly our mappings:\n%s", out)
	}
	if !strings.Contains(out, "'Hearth chat'") {
		t.Errorf("description missing in upnpc -l:\n%s", out)
	}

	// A peer on the internet side reaches our listener through the router.
	got, err := l.dial(wanRouter + ":5222")
	if err != nil || strings.TrimSpace(got) != "hearth 5222" {
		t.Fatalf("wan peer through the mapping: %q, %v", got, err)
	}

	// Renewal: a control mapping with the same 4-second lease, made by
	// upnpc and never renewed, expires; ours stays on the router.
	l.Upnpc("-e", "control", "-a", lanAddr, "40000", "40000", "TCP", "4")
	if !routerlab.Listed(l.List(), "tcp", 40000) {
		t.Fatal("control mapping not added")
	}
	deadline := time.Now().Add(20 * time.Second)
	for routerlab.Listed(l.List(), "tcp", 40000) {
		if time.Now().After(deadline) {
			t.Fatal("miniupnpd never expired the control mapping; renewal cannot be told apart")
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // more than a whole lease past the control's expiry
	if out := l.List(); !routerlab.Listed(out, "tcp", 5222) || !routerlab.Listed(out, "udp", 3478) {
		t.Fatalf("our mappings expired instead of being renewed:\n%s", out)
	}
	if got, err := l.dial(wanRouter + ":5222"); err != nil || strings.TrimSpace(got) != "hearth 5222" {
		t.Fatalf("after renewals: %q, %v", got, err)
	}

	// Shutdown deletes the mappings.
	c.stop(15 * time.Second)
	if out := l.List(); routerlab.Listed(out, "tcp", 5222) || routerlab.Listed(out, "udp", 3478) {
		t.Fatalf("mappings left on the router after shutdown:\n%s", out)
	}
	r = c.report()
	if level(r, CheckRouter) != status.Off {
		t.Errorf("router check after shutdown: %v", level(r, CheckRouter))
	}
	if _, ok := r.Get(chat.CheckID()); ok {
		t.Errorf("mapping check left after shutdown")
	}
}

// After the router restarts (on another port, with its table empty, as
// after a reboot) the client finds it again and maps again.
func TestRediscoverAfterRouterRestart(t *testing.T) {
	l := newLab(t, wanRouter+"/24")
	l.StartRouter(40001)
	c := l.startClient(helperOpts{Ports: []Port{chat}, Lease: 4 * time.Second,
		RetryMin: time.Second, RetryMax: 2 * time.Second})
	c.wait("first mapping", 20*time.Second, func(r status.Report) bool {
		rc, _ := r.Get(CheckRouter)
		return level(r, chat.CheckID()) == status.OK && strings.Contains(rc.Detail["location"], ":40001/")
	})
	if !routerlab.Listed(l.List(), "tcp", 5222) {
		t.Fatal("mapping not on the router")
	}

	l.StopRouter()
	// A reboot forgets everything: empty the forwarding chains too.
	for _, ch := range []string{"miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd"} {
		l.Router.MustRun(t, "nft", "flush", "chain", "inet", "filter", ch)
	}
	c.wait("the client to notice", 20*time.Second, func(r status.Report) bool {
		return level(r, CheckRouter) != status.OK
	})
	l.StartRouter(40002)
	c.wait("mapping on the restarted router", 30*time.Second, func(r status.Report) bool {
		rc, _ := r.Get(CheckRouter)
		return level(r, chat.CheckID()) == status.OK && rc.Level == status.OK && strings.Contains(rc.Detail["location"], ":40002/")
	})
	if !routerlab.Listed(l.List(), "tcp", 5222) {
		t.Fatalf("mapping not back on the restarted router:\n%s", l.List())
	}
	c.stop(15 * time.Second)
	if routerlab.Listed(l.List(), "tcp", 5222) {
		t.Fatal("mapping left after shutdown")
	}
}

// The router's WAN side is in 100.64.0.0/10. miniupnpd then reports no
// external address and refuses every mapping (501): the status must say
// the line is shared (carrier-grade NAT) and point to Tor, never success.
func TestCarrierGradeNAT(t *testing.T) {
	l := newLab(t, "100.64.0.1/10")
	l.StartRouter(0)
	c := l.startClient(helperOpts{Ports: []Port{chat}, Lease: time.Hour,
		RetryMin: time.Second, RetryMax: 2 * time.Second})
	r := c.wait("external check", 20*time.Second, func(r status.Report) bool {
		_, ok := r.Get(CheckExternal)
		_, mok := r.Get(chat.CheckID())
		return ok && mok && level(r, chat.CheckID()) != status.Pending
	})
	ec, _ := r.Get(CheckExternal)
	if ec.Level != status.Error || !strings.Contains(ec.Message, "carrier-grade NAT") || !strings.Contains(ec.Action, "Tor") {
		t.Errorf("external check does not tell about the shared address: %+v", ec)
	}
	if ec.Detail["kind"] != "none" || ec.Detail["connection"] != "Connected" {
		t.Errorf("external detail: %v", ec.Detail)
	}
	mc, _ := r.Get(chat.CheckID())
	if mc.Level == status.OK || mc.Detail["code"] != "501" || !strings.Contains(mc.Message, "no public internet address") {
		t.Errorf("mapping check claims or misstates: %+v", mc)
	}
	if r.Worst() != status.Error {
		t.Errorf("worst level %v", r.Worst())
	}
	// upnpc refuses to list an IGD without an external address, so look
	// at the router's forwarding rules themselves.
	if nat := l.Router.MustRun(t, "nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd"); strings.Contains(nat, "dport 5222") {
		t.Errorf("a forwarding exists although the router refused it:\n%s", nat)
	}
	c.stop(15 * time.Second)
}

// No router at all: a plain-words Error, quiet retries; once a router
// appears, the client finds it without being restarted.
func TestNoRouterThenRouter(t *testing.T) {
	l := newLab(t, wanRouter+"/24")
	c := l.startClient(helperOpts{Ports: []Port{chat}, Lease: time.Hour,
		RetryMin: time.Second, RetryMax: 2 * time.Second})
	// Both checks in one report: a CI run caught the report between the
	// router's error and the mapping check's first entry (level "").
	r := c.wait("no-router error", 20*time.Second, func(r status.Report) bool {
		return level(r, CheckRouter) == status.Error && level(r, chat.CheckID()) != ""
	})
	rc, _ := r.Get(CheckRouter)
	if !strings.Contains(rc.Message, "No router") || !strings.Contains(rc.Action, "turn on UPnP") || rc.Detail["retry"] == "" {
		t.Errorf("router check: %+v", rc)
	}
	for _, bad := range []string{"SSDP", "SOAP", "IGD", "M-SEARCH"} {
		if strings.Contains(rc.Message+rc.Action, bad) {
			t.Errorf("jargon %q in %q / %q", bad, rc.Message, rc.Action)
		}
	}
	if level(r, chat.CheckID()) != status.Pending {
		t.Errorf("mapping check without router: %v", level(r, chat.CheckID()))
	}
	// The pause between searches grows (1s, then 2s, the maximum here)
	// instead of searching in a tight loop.
	c.wait("a longer pause", 20*time.Second, func(r status.Report) bool {
		rc, _ := r.Get(CheckRouter)
		return rc.Level == status.Error && rc.Detail["retry"] == "2s"
	})
	l.StartRouter(0)
	c.wait("router found later", 20*time.Second, func(r status.Report) bool {
		return level(r, CheckRouter) == status.OK && level(r, chat.CheckID()) == status.OK
	})
	c.stop(15 * time.Second)
}

// Factory reset: DeleteAll removes our mappings, those from an older port
// list ("Hearth …" descriptions to our address), and nothing else.
func TestDeleteAll(t *testing.T) {
	l := newLab(t, wanRouter+"/24")
	l.StartRouter(0)
	c := l.startClient(helperOpts{Ports: []Port{chat}, Lease: time.Hour, LANAddr: lanAddr,
		RetryMin: time.Second, RetryMax: 2 * time.Second})
	c.wait("mapping", 20*time.Second, func(r status.Report) bool { return level(r, chat.CheckID()) == status.OK })
	// A crash leaves the mapping behind.
	c.cmd.Process.Kill()
	<-c.done
	l.Upnpc("-e", "Hearth old relay", "-a", lanAddr, "49160", "49160", "UDP", "3600")
	l.Upnpc("-e", "someone else", "-a", lanAddr, "40010", "40010", "TCP", "3600")
	out := l.List()
	if !routerlab.Listed(out, "tcp", 5222) || !routerlab.Listed(out, "udp", 49160) || !routerlab.Listed(out, "tcp", 40010) {
		t.Fatalf("setup:\n%s", out)
	}
	cmd := l.LAN.Command(mustExe(t))
	cmd.Env = append(cmd.Environ(), helperEnv+"=deleteall", `HNC_UPNP_OPTS={"Ports":[{"Proto":"tcp","Port":5222,"Description":"Hearth chat"}],"RetryMin":1000000000,"RetryMax":2000000000}`)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("DeleteAll: %v\n%s", err, b)
	}
	out = l.List()
	if routerlab.Listed(out, "tcp", 5222) || routerlab.Listed(out, "udp", 49160) {
		t.Errorf("our mappings survived DeleteAll:\n%s", out)
	}
	if !routerlab.Listed(out, "tcp", 40010) {
		t.Errorf("DeleteAll removed another program's mapping:\n%s", out)
	}
}

// A router that offers only IGD version 1 (miniupnpd's force_igd_desc_v1)
// is used through WANIPConnection:1.
func TestIGDv1Router(t *testing.T) {
	l := newLab(t, wanRouter+"/24")
	l.StartRouter(0, "force_igd_desc_v1=yes")
	c := l.startClient(helperOpts{Ports: []Port{chat}, Lease: time.Hour,
		RetryMin: time.Second, RetryMax: 2 * time.Second})
	r := c.wait("mapping", 20*time.Second, func(r status.Report) bool { return level(r, chat.CheckID()) == status.OK })
	if rc, _ := r.Get(CheckRouter); rc.Detail["service"] != "WANIPConnection:1" {
		t.Errorf("service %q, want WANIPConnection:1", rc.Detail["service"])
	}
	if !routerlab.Listed(l.List(), "tcp", 5222) {
		t.Fatal("mapping not on the router")
	}
	c.stop(15 * time.Second)
	if routerlab.Listed(l.List(), "tcp", 5222) {
		t.Fatal("mapping left after shutdown")
	}
}
