//go:build e2e

package mdns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hearthchat/hearth/netconf/status"
)

// getent resolves name in the peer namespace through nss-mdns → avahi.
func (a *avahi) getent(name string) (string, error) {
	out, err := a.exec(10*time.Second, "getent", "hosts", name)
	return strings.TrimSpace(out), err
}

// browse lists the resolved `_http._tcp` services: lines
// "=;eth0;IPv4;hearth;Web Site;local;hearth.local;10.77.0.11;8080;"path=/"".
func (a *avahi) browse() []string {
	a.t.Helper()
	out, err := a.exec(20*time.Second, "avahi-browse", "-rtp", "_http._tcp")
	if err != nil {
		a.t.Fatalf("avahi-browse: %v\n%s", err, out)
	}
	var res []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "=;") {
			res = append(res, l)
		}
	}
	return res
}

func wantBrowsed(t *testing.T, lines []string, instance, host, addr string, port int) {
	t.Helper()
	want := fmt.Sprintf(";IPv4;%s;Web Site;local;%s;%s;%d;\"path=/\"", instance, host, addr, port)
	for _, l := range lines {
		if strings.HasPrefix(l, "=;eth0") && strings.HasSuffix(l, want) {
			return
		}
	}
	t.Errorf("avahi-browse did not find %s (%s:%d): got\n%s", instance, addr, port, strings.Join(lines, "\n"))
}

// wantResolves checks getent's answer: "10.77.0.11      hearth.local".
func wantResolves(t *testing.T, a *avahi, name, addr string) {
	t.Helper()
	out, err := a.getent(name)
	f := strings.Fields(out)
	if err != nil || len(f) != 2 || f[0] != addr || f[1] != name {
		t.Errorf("getent hosts %s = %q, %v; want %s", name, out, err, addr)
	}
}

// wantGone checks that name no longer resolves shortly after its
// responder stopped. The peer had it cached for 120 s; only the goodbye
// packets (TTL 0, which avahi honours after one second) make it go
// within the few seconds allowed here.
func wantGone(t *testing.T, a *avahi, name string) {
	t.Helper()
	var out string
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if out, err = a.getent(name); err != nil && out == "" {
			return
		}
	}
	t.Errorf("%s still resolves 5 s after the responder said goodbye: %q", name, out)
}

// A phone that has never heard of the box (avahi started after the box's
// announcements, so its cache is cold) finds it by name and by browsing;
// an address change is re-announced; after shutdown the name is gone.
func TestAvahiFindsBox(t *testing.T) {
	needTools(t)
	newLab(t, 1)
	b := startBox(t, 1, "hearth", 8080, time.Second)
	ok := b.waitLevel(status.OK)
	if ok.Name != "hearth.local" || ok.Check.Message != "Phones and computers at home can open http://hearth.local:8080" {
		t.Errorf("ok status: %+v", ok)
	}
	if d := ok.Check.Detail; d["interfaces"] != "eth0" || !strings.Contains(d["addresses"], boxV4(1)) || d["url"] != "http://hearth.local:8080" {
		t.Errorf("detail: %v", d)
	}
	b.waitLog(5*time.Second, "announced hearth.local. (2 of 2)") // both are out, unheard

	a := startAvahi(t)
	start := time.Now()
	wantResolves(t, a, "hearth.local", boxV4(1))
	t.Logf("getent hosts hearth.local from a cold cache: %v", time.Since(start))

	out, err := a.exec(10*time.Second, "avahi-resolve", "-n", "hearth.local")
	if f := strings.Fields(out); err != nil || len(f) != 2 || f[0] != "hearth.local" || (f[1] != boxV4(1) && !strings.HasPrefix(f[1], "f")) {
		t.Errorf("avahi-resolve -n hearth.local = %q, %v", out, err)
	}
	out, err = a.exec(10*time.Second, "avahi-resolve", "-4", "-n", "hearth.local")
	if f := strings.Fields(out); err != nil || len(f) != 2 || f[1] != boxV4(1) {
		t.Errorf("avahi-resolve -4 -n hearth.local = %q, %v", out, err)
	}
	out, err = a.exec(10*time.Second, "avahi-resolve", "-6", "-n", "hearth.local")
	if f := strings.Fields(out); err != nil || len(f) != 2 || !strings.HasPrefix(f[1], "f") {
		// fd77::11 or the link-local fe80:: address; both are ours.
		t.Errorf("avahi-resolve -6 -n hearth.local = %q, %v", out, err)
	}
	wantBrowsed(t, a.browse(), "hearth", "hearth.local", boxV4(1), 8080)

	// The box gets a new address (DHCP): the responder notices within its
	// poll interval and announces with the cache-flush bit, so the peer
	// drops the old address.
	run(t, "ip", "-n", nsBox(1), "addr", "del", boxV4(1)+"/24", "dev", "eth0")
	run(t, "ip", "-n", nsBox(1), "addr", "add", "10.77.0.21/24", "dev", "eth0")
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := a.getent("hearth.local")
		if f := strings.Fields(out); len(f) == 2 && f[0] == "10.77.0.21" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the address change getent hosts hearth.local = %q, want 10.77.0.21", out)
		}
		time.Sleep(250 * time.Millisecond)
	}

	b.shutdown()
	wantGone(t, a, "hearth.local")
	if got := a.browse(); len(got) != 0 {
		t.Errorf("still browsable after shutdown: %v", got)
	}
}

// A second box with the same name becomes hearth-2.local and says so;
// both names resolve to the right boxes; when the first leaves, only its
// name goes.
func TestSecondBoxBecomesHearth2(t *testing.T) {
	needTools(t)
	newLab(t, 2)
	a := startAvahi(t)
	b1 := startBox(t, 1, "hearth", 80, 30*time.Second)
	if l := b1.waitLevel(status.OK); l.Name != "hearth.local" {
		t.Fatalf("first box: %+v", l)
	}
	b2 := startBox(t, 2, "hearth", 80, 30*time.Second)
	w := b2.waitLevel(status.Warn)
	if w.Name != "hearth-2.local" {
		t.Fatalf("second box took %q, want hearth-2.local", w.Name)
	}
	if w.Check.Message != "Another device already calls itself hearth.local; this box is http://hearth-2.local" || w.Check.Action == "" {
		t.Errorf("warn status: %+v", w.Check)
	}
	if w.Check.Detail["name"] != "hearth-2.local" || w.Check.Detail["wanted"] != "hearth.local" {
		t.Errorf("warn detail: %v", w.Check.Detail)
	}

	wantResolves(t, a, "hearth.local", boxV4(1))
	wantResolves(t, a, "hearth-2.local", boxV4(2))
	got := a.browse()
	wantBrowsed(t, got, "hearth", "hearth.local", boxV4(1), 80)
	wantBrowsed(t, got, "hearth-2", "hearth-2.local", boxV4(2), 80)

	// The first box kept its name and status the whole time.
	b1.mu.Lock()
	for _, l := range b1.checks {
		if l.Check.Level == status.Warn || l.Check.Level == status.Error {
			t.Errorf("first box reported %+v", l)
		}
	}
	b1.mu.Unlock()

	b1.shutdown()
	wantGone(t, a, "hearth.local")
	wantResolves(t, a, "hearth-2.local", boxV4(2))
	b2.shutdown()
	wantGone(t, a, "hearth-2.local")
}

// A plain resolver with no mDNS daemon (what a phone's or a laptop's
// one-shot lookup is) asks once from a random port and gets a
// conventional DNS answer: its query ID, its question, the box's address,
// a short TTL and no mDNS cache-flush bit (RFC 6762 §6.7).
func TestLegacyOneShotQuery(t *testing.T) {
	needTools(t)
	newLab(t, 1)
	b := startBox(t, 1, "hearth", 80, 30*time.Second)
	b.waitLevel(status.OK)

	cases := []struct {
		qtype, to, want string
	}{
		{"A", "group4", boxV4(1)},
		{"A", boxV4(1) + ":5353", boxV4(1)},
		{"AAAA", "group6", ""}, // one of the box's IPv6 addresses
		{"AAAA", "[" + boxV6(1) + "]:5353", ""},
	}
	for _, c := range cases {
		t.Run(c.qtype+"-"+c.to, func(t *testing.T) {
			m, res := query(t, "hearth.local.", c.qtype, c.to)
			if m.Id != res.Query || !m.Response || !m.Authoritative || m.Rcode != dns.RcodeSuccess {
				t.Errorf("header: id %d (query %d) qr %v aa %v rcode %d", m.Id, res.Query, m.Response, m.Authoritative, m.Rcode)
			}
			if len(m.Question) != 1 || m.Question[0].Name != "hearth.local." || dns.TypeToString[m.Question[0].Qtype] != c.qtype || m.Question[0].Qclass != dns.ClassINET {
				t.Errorf("question not repeated: %v", m.Question)
			}
			if !strings.HasSuffix(res.From, ":5353") {
				t.Errorf("reply from %s, want port 5353", res.From)
			}
			var addrs []string
			for _, rr := range m.Answer {
				h := rr.Header()
				if h.Class != dns.ClassINET || h.Ttl == 0 || h.Ttl > 10 || h.Name != "hearth.local." {
					t.Errorf("answer header %v: want class IN (no cache-flush bit), TTL 1..10", h)
				}
				switch r := rr.(type) {
				case *dns.A:
					addrs = append(addrs, r.A.String())
				case *dns.AAAA:
					addrs = append(addrs, r.AAAA.String())
				}
			}
			if len(addrs) == 0 || c.want != "" && (len(addrs) != 1 || addrs[0] != c.want) {
				t.Errorf("answers %v, want %s", addrs, c.want)
			}
			if c.qtype == "AAAA" && !strings.Contains(strings.Join(addrs, " "), boxV6(1)) {
				t.Errorf("AAAA answers %v lack %s", addrs, boxV6(1))
			}
		})
	}

	// A name that is not ours gets no answer at all (mDNS responders stay
	// silent), so the resolver times out rather than being told wrong.
	exe, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", nsPeer, exe, "-test.run", "^TestHelperQuery$")
	cmd.Env = append(os.Environ(), helperEnv+"=query", "HNC_MDNS_QNAME=other.local.", "HNC_MDNS_QTYPE=A",
		"HNC_MDNS_TO=group4", "HNC_MDNS_IFACE=eth0")
	out, _ := cmd.Output()
	if !strings.Contains(string(out), "timeout") {
		t.Errorf("query for other.local: %s", out)
	}
}

// Answers go out only on the LAN interfaces: with Options.Interfaces set
// to eth0, a query arriving on eth1 (multicast or sent straight to the
// box) gets nothing, and the LAN peer sees only the LAN address. Without
// the option each interface answers with its own address. A list naming
// no existing interface is an Error with an action.
func TestLANInterfacesOnly(t *testing.T) {
	needTools(t)
	newLab(t, 1)
	addWAN(t)

	b := startBox(t, 1, "hearth", 80, 30*time.Second, "eth0")
	if ok := b.waitLevel(status.OK); ok.Check.Detail["interfaces"] != "eth0" {
		t.Errorf("interfaces: %v", ok.Check.Detail)
	}
	m, _ := query(t, "hearth.local.", "A", "group4")
	if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != boxV4(1) {
		t.Errorf("LAN answer: %v", m.Answer)
	}
	for _, to := range []string{"group4", "10.88.0.11:5353"} {
		if m, res := queryFrom(t, nsWAN, "hearth.local.", "A", to); m != nil || !strings.Contains(res.Error, "timeout") {
			t.Errorf("query from the WAN side (%s) answered: %v %v", to, m, res.Error)
		}
	}
	b.shutdown()

	b = startBox(t, 1, "hearth", 80, 30*time.Second)
	if ok := b.waitLevel(status.OK); ok.Check.Detail["interfaces"] != "eth0, eth1" {
		t.Errorf("default interfaces: %v", ok.Check.Detail)
	}
	m, _ = queryFrom(t, nsWAN, "hearth.local.", "A", "group4")
	if m == nil || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.88.0.11" {
		t.Errorf("eth1 answer: %v", m)
	}
	m, _ = query(t, "hearth.local.", "A", "group4")
	if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != boxV4(1) {
		t.Errorf("eth0 answer: %v", m.Answer)
	}
	b.shutdown()

	b = startBox(t, 1, "hearth", 80, 30*time.Second, "wlan7")
	e := b.waitLevel(status.Error)
	if !strings.Contains(e.Check.Message, "not connected") || e.Check.Action == "" || e.Name != "" {
		t.Errorf("no LAN: %+v", e)
	}
	b.shutdown()
}

// Two boxes that took the same name while apart (here: box 2's switch
// port was off the bridge, carrier up) meet when box 1 re-announces after
// an address change; box 2 notices the conflict, probes again and becomes
// hearth-2 while box 1 keeps hearth. Then box 1's cable is pulled (Error:
// not connected) and plugged back in (OK again, same name).
func TestLateConflictAndReplug(t *testing.T) {
	needTools(t)
	newLab(t, 2)
	a := startAvahi(t)
	run(t, "ip", "-n", nsSwitch, "link", "set", "p2", "nomaster")
	b1 := startBox(t, 1, "hearth", 80, time.Second)
	b2 := startBox(t, 2, "hearth", 80, time.Second)
	if l := b1.waitLevel(status.OK); l.Name != "hearth.local" {
		t.Fatalf("box 1: %+v", l)
	}
	if l := b2.waitLevel(status.OK); l.Name != "hearth.local" {
		t.Fatalf("box 2 (apart): %+v", l)
	}
	// Box 2's announcements must be over before it joins: whichever box
	// hears the other first probes again and loses the name (RFC 6762
	// §9), and this test wants that to be box 2.
	b2.waitLog(5*time.Second, "announced hearth.local. (2 of 2)")
	run(t, "ip", "-n", nsSwitch, "link", "set", "p2", "master", "br0")
	run(t, "ip", "-n", nsBox(1), "addr", "add", "10.77.0.31/24", "dev", "eth0")

	w := b2.waitLevel(status.Warn)
	if w.Name != "hearth-2.local" {
		t.Fatalf("box 2 after meeting box 1: %+v", w)
	}
	b1.mu.Lock()
	for _, l := range b1.checks[2:] { // after pending, ok
		if l.Check.Level != status.OK || l.Name != "hearth.local" {
			t.Errorf("box 1 gave up its name: %+v", l)
		}
	}
	b1.mu.Unlock()
	out, err := a.getent("hearth.local")
	if f := strings.Fields(out); err != nil || len(f) != 2 || (f[0] != boxV4(1) && f[0] != "10.77.0.31") {
		t.Errorf("getent hosts hearth.local = %q, %v; want box 1", out, err)
	}
	wantResolves(t, a, "hearth-2.local", boxV4(2))

	run(t, "ip", "-n", nsSwitch, "link", "set", "p1", "down")
	e := b1.waitLevel(status.Error)
	if !strings.Contains(e.Check.Message, "not connected") || e.Check.Action == "" || e.Name != "" {
		t.Errorf("cable out: %+v", e)
	}
	run(t, "ip", "-n", nsSwitch, "link", "set", "p1", "up")
	if l := b1.waitLevel(status.OK); l.Name != "hearth.local" {
		t.Errorf("cable back in: %+v", l)
	}
	b1.shutdown()
	b2.shutdown()
}

// Two boxes switched on together probe at the same moment; the
// simultaneous-probe tie-break (RFC 6762 §8.2) gives the name to exactly
// one of them and hearth-2 to the other.
func TestTwoBoxesStartTogether(t *testing.T) {
	needTools(t)
	newLab(t, 2)
	a := startAvahi(t)
	b1 := startBox(t, 1, "hearth", 80, 30*time.Second)
	b2 := startBox(t, 2, "hearth", 80, 30*time.Second)
	settled := func(b *box) helperLine {
		return b.wait(15*time.Second, "a name", func(l helperLine) bool {
			return l.Check.Level == status.OK || l.Check.Level == status.Warn
		})
	}
	n1, n2 := settled(b1), settled(b2)
	names := map[string]int{n1.Name: 1, n2.Name: 2}
	if len(names) != 2 || names["hearth.local"] == 0 || names["hearth-2.local"] == 0 {
		t.Fatalf("names %q and %q, want hearth.local and hearth-2.local", n1.Name, n2.Name)
	}
	t.Logf("box %d won hearth.local", names["hearth.local"])
	wantResolves(t, a, "hearth.local", boxV4(names["hearth.local"]))
	wantResolves(t, a, "hearth-2.local", boxV4(names["hearth-2.local"]))
	b1.shutdown()
	b2.shutdown()
}
