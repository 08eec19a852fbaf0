package mdns

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hearthchat/hearth/netconf/status"
)

func testIface(addrs ...string) lanIface {
	li := lanIface{Index: 2, Name: "eth0"}
	for _, a := range addrs {
		p := netip.MustParsePrefix(a)
		li.Addrs = append(li.Addrs, p.Addr())
		li.Nets = append(li.Nets, p.Masked())
	}
	return li
}

var dual = testIface("192.168.1.5/24", "fd00::5/64", "fe80::5/64")

func TestNewOptions(t *testing.T) {
	var b status.Board
	cases := []struct {
		in       Options
		host     string
		port     int
		errMatch string
	}{
		{Options{Reporter: &b}, "hearth", 80, ""},
		{Options{Reporter: &b, Hostname: "Hearth.local.", HTTPPort: 8080}, "hearth", 8080, ""},
		{Options{Reporter: &b, Hostname: "my box"}, "", 0, "letters, digits"},
		{Options{Reporter: &b, Hostname: "-x"}, "", 0, "letters, digits"},
		{Options{Reporter: &b, HTTPPort: 70000}, "", 0, "out of range"},
		{Options{}, "", 0, "Reporter"},
	}
	for _, c := range cases {
		r, err := New(c.in)
		if c.errMatch != "" {
			if err == nil || !strings.Contains(err.Error(), c.errMatch) {
				t.Errorf("New(%+v) error %v, want %q", c.in, err, c.errMatch)
			}
			continue
		}
		if err != nil || r.opts.Hostname != c.host || r.opts.HTTPPort != c.port || r.opts.PollInterval <= 0 {
			t.Errorf("New(%+v) = %+v, %v", c.in, r, err)
		}
		if r.Name() != "" {
			t.Errorf("Name before Run = %q", r.Name())
		}
	}
}

func TestCandidate(t *testing.T) {
	for _, c := range []struct {
		base string
		n    int
		want string
	}{
		{"hearth", 1, "hearth"},
		{"hearth", 2, "hearth-2"},
		{"hearth", 10, "hearth-10"},
		{strings.Repeat("a", 63), 2, strings.Repeat("a", 61) + "-2"},
		{strings.Repeat("a", 60) + "-bc", 3, strings.Repeat("a", 60) + "-3"},
	} {
		got := candidate(c.base, c.n)
		if got != c.want || !validLabel(got) {
			t.Errorf("candidate(%q, %d) = %q, want %q", c.base, c.n, got, c.want)
		}
	}
}

func types(rrs []dns.RR) string {
	var s []string
	for _, rr := range rrs {
		s = append(s, dns.TypeToString[rr.Header().Rrtype])
	}
	return strings.Join(s, ",")
}

func TestAnswer(t *testing.T) {
	z := newZone("hearth", 8080)
	v4only := testIface("192.168.1.5/24")
	cases := []struct {
		name        string
		q           dns.Question
		ifc         lanIface
		ans, extras string
	}{
		{"A", dns.Question{Name: "hearth.local.", Qtype: dns.TypeA}, dual, "A", "AAAA,AAAA"},
		{"A any case", dns.Question{Name: "HEARTH.Local.", Qtype: dns.TypeA}, dual, "A", "AAAA,AAAA"},
		{"AAAA", dns.Question{Name: "hearth.local.", Qtype: dns.TypeAAAA}, dual, "AAAA,AAAA", "A"},
		{"ANY", dns.Question{Name: "hearth.local.", Qtype: dns.TypeANY}, dual, "A,AAAA,AAAA", ""},
		{"A, no IPv6", dns.Question{Name: "hearth.local.", Qtype: dns.TypeA}, v4only, "A", "NSEC"},
		{"AAAA, no IPv6", dns.Question{Name: "hearth.local.", Qtype: dns.TypeAAAA}, v4only, "NSEC", ""},
		{"browse", dns.Question{Name: "_http._tcp.local.", Qtype: dns.TypePTR}, dual, "PTR", "SRV,TXT,A,AAAA,AAAA"},
		{"SRV", dns.Question{Name: "hearth._http._tcp.local.", Qtype: dns.TypeSRV}, dual, "SRV", "A,AAAA,AAAA"},
		{"TXT", dns.Question{Name: "hearth._http._tcp.local.", Qtype: dns.TypeTXT}, dual, "TXT", ""},
		{"meta", dns.Question{Name: "_services._dns-sd._udp.local.", Qtype: dns.TypePTR}, dual, "PTR", ""},
		{"other host", dns.Question{Name: "printer.local.", Qtype: dns.TypeA}, dual, "", ""},
		{"other service", dns.Question{Name: "_ipp._tcp.local.", Qtype: dns.TypePTR}, dual, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ans, extra := z.answer(c.q, c.ifc)
			if types(ans) != c.ans || types(extra) != c.extras {
				t.Errorf("answers %s / extra %s, want %s / %s", types(ans), types(extra), c.ans, c.extras)
			}
		})
	}
	ans, _ := z.answer(dns.Question{Name: "hearth._http._tcp.local.", Qtype: dns.TypeANY}, dual)
	srv, txt := ans[0].(*dns.SRV), ans[1].(*dns.TXT)
	if srv.Port != 8080 || srv.Target != "hearth.local." || len(txt.Txt) != 1 || txt.Txt[0] != "path=/" {
		t.Errorf("SRV %v TXT %v", srv, txt)
	}
	ans, _ = z.answer(dns.Question{Name: "hearth.local.", Qtype: dns.TypeA}, dual)
	if a := ans[0].(*dns.A); a.A.String() != "192.168.1.5" || a.Hdr.Ttl != ttlHost {
		t.Errorf("A %v", a)
	}
}

func TestResponseFlags(t *testing.T) {
	z := newZone("hearth", 80)
	m := response(z.all(dual), nil)
	if !m.Response || !m.Authoritative || m.Id != 0 || len(m.Question) != 0 {
		t.Errorf("header %+v", m.MsgHdr)
	}
	for _, rr := range m.Answer {
		flush := rr.Header().Class&cacheFlush != 0
		if flush == shared(rr) {
			t.Errorf("%v: cache-flush %v", rr, flush)
		}
	}
	// response copies: the zone's own records stay unflagged.
	if z.srv().Hdr.Class != dns.ClassINET {
		t.Error("response changed the zone's records")
	}
	for _, rr := range z.goodbye(dual).Answer {
		if rr.Header().Ttl != 0 {
			t.Errorf("goodbye %v has TTL", rr)
		}
	}
}

func TestLegacyResponse(t *testing.T) {
	z := newZone("hearth", 80)
	q := new(dns.Msg)
	q.SetQuestion("hearth.local.", dns.TypeA)
	q.Question[0].Qclass |= unicastQ
	ans, extra := z.answer(q.Question[0], dual)
	m := legacyResponse(q, ans, extra)
	if m.Id != q.Id || !m.Response || !m.Authoritative || !m.RecursionDesired {
		t.Errorf("header %+v", m.MsgHdr)
	}
	if len(m.Question) != 1 || m.Question[0].Name != "hearth.local." || m.Question[0].Qclass != dns.ClassINET {
		t.Errorf("question %v", m.Question)
	}
	for _, rr := range append(m.Answer, m.Extra...) {
		if h := rr.Header(); h.Ttl > ttlLegacy || h.Class != dns.ClassINET {
			t.Errorf("%v: want TTL <= %d and plain class", rr, ttlLegacy)
		}
	}
	if _, err := m.Pack(); err != nil {
		t.Fatal(err)
	}
}

func TestLegacyReply(t *testing.T) {
	z := newZone("hearth", 80)
	v4only := testIface("192.168.1.5/24")
	ask := func(name string, qt uint16) *dns.Msg {
		q := new(dns.Msg)
		q.SetQuestion(name, qt)
		return q
	}
	if m := z.legacyReply(ask("hearth.local.", dns.TypeA), v4only); m == nil || types(m.Answer) != "A" || types(m.Extra) != "" {
		t.Errorf("A: %v", m)
	}
	m := z.legacyReply(ask("hearth.local.", dns.TypeAAAA), v4only)
	if m == nil || len(m.Answer) != 0 || len(m.Extra) != 0 || m.Rcode != dns.RcodeSuccess || !m.Authoritative || len(m.Question) != 1 {
		t.Errorf("AAAA on an IPv4-only network: want an empty authoritative answer, got %v", m)
	}
	if m := z.legacyReply(ask("printer.local.", dns.TypeA), dual); m != nil {
		t.Errorf("someone else's name answered: %v", m)
	}
	if m := z.legacyReply(ask("_http._tcp.local.", dns.TypePTR), dual); m == nil || types(m.Answer) != "PTR" || types(m.Extra) != "SRV,TXT,A,AAAA,AAAA" {
		t.Errorf("browse: %v", m)
	}
}

func TestSuppressKnownAnswers(t *testing.T) {
	z := newZone("hearth", 80)
	ptr := z.ptr()
	fresh := dns.Copy(ptr)
	stale := dns.Copy(ptr)
	stale.Header().Ttl = ttlOther/2 - 1
	if got := suppress([]dns.RR{ptr}, []dns.RR{fresh}); len(got) != 0 {
		t.Errorf("known answer not suppressed: %v", got)
	}
	if got := suppress([]dns.RR{ptr}, []dns.RR{stale}); len(got) != 1 {
		t.Errorf("stale known answer suppressed ours: %v", got)
	}
	other := &dns.PTR{Hdr: hdr(serviceType, dns.TypePTR, ttlOther), Ptr: "printer._http._tcp.local."}
	if got := suppress([]dns.RR{ptr}, []dns.RR{other}); len(got) != 1 {
		t.Errorf("someone else's PTR suppressed ours: %v", got)
	}
}

func TestConflictIn(t *testing.T) {
	z := newZone("hearth", 80)
	mine := func(a netip.Addr) bool { return a == netip.MustParseAddr("192.168.1.5") }
	a := func(name, ip string, ttl uint32) dns.RR {
		return &dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: netip.MustParseAddr(ip).AsSlice()}
	}
	srv := z.srv()
	srv.Port = 8080
	cases := []struct {
		name string
		rrs  []dns.RR
		want bool
	}{
		{"our own address", []dns.RR{a("hearth.local.", "192.168.1.5", 120)}, false},
		{"someone else's address", []dns.RR{a("hearth.local.", "192.168.1.9", 120)}, true},
		{"same name other case", []dns.RR{a("Hearth.Local.", "192.168.1.9", 120)}, true},
		{"their goodbye", []dns.RR{a("hearth.local.", "192.168.1.9", 0)}, false},
		{"another name", []dns.RR{a("hearth-2.local.", "192.168.1.9", 120)}, false},
		{"our service elsewhere", []dns.RR{srv}, true},
		{"our service as we have it", []dns.RR{withFlush([]dns.RR{z.srv()})[0]}, false},
	}
	for _, c := range cases {
		m := new(dns.Msg)
		m.Response = true
		m.Answer = c.rrs
		if got := z.conflictIn(m, mine); got != c.want {
			t.Errorf("%s: conflict %v, want %v", c.name, got, c.want)
		}
	}
}

func TestTieBreak(t *testing.T) {
	z := newZone("hearth", 80)
	ours := z.probe(testIface("192.168.1.5/24"))
	for _, c := range []struct {
		addr string
		want int
	}{
		{"192.168.1.9/24", -1}, // theirs is later: they win
		{"192.168.1.2/24", 1},
		{"192.168.1.5/24", 0},
	} {
		theirs := z.probe(testIface(c.addr))
		if got := z.tieBreak(theirs, ours); got != c.want {
			t.Errorf("their %s: %d, want %d", c.addr, got, c.want)
		}
	}
	other := newZone("printer", 631).probe(testIface("192.168.1.9/24"))
	if got := z.tieBreak(other, ours); got != 0 {
		t.Errorf("probe for another name: %d", got)
	}
}

func TestOnLink(t *testing.T) {
	for _, c := range []struct {
		a    string
		want bool
	}{
		{"192.168.1.77", true},
		{"192.168.2.1", false},
		{"8.8.8.8", false},
		{"fe80::1234", true},
		{"fd00::99", true},
		{"2001:db8::1", false},
	} {
		if got := dual.onLink(netip.MustParseAddr(c.a)); got != c.want {
			t.Errorf("onLink(%s) = %v", c.a, got)
		}
	}
}

func TestStatusWording(t *testing.T) {
	var b status.Board
	r, err := New(Options{Reporter: &b})
	if err != nil {
		t.Fatal(err)
	}
	r.claimed(newZone("hearth", 80), []lanIface{dual})
	c, _ := b.Report().Get(CheckID)
	if c.Level != status.OK || c.Message != "Phones and computers at home can open http://hearth.local" || c.Action != "" ||
		c.Detail["addresses"] != "192.168.1.5, fd00::5, fe80::5%eth0" {
		t.Errorf("ok: %+v", c)
	}
	r.claimed(newZone("hearth-2", 80), []lanIface{dual})
	c, _ = b.Report().Get(CheckID)
	if c.Level != status.Warn || c.Message != "Another device already calls itself hearth.local; this box is http://hearth-2.local" || c.Action == "" {
		t.Errorf("warn: %+v", c)
	}
	r.failed(errNoLAN)
	c, _ = b.Report().Get(CheckID)
	if c.Level != status.Error || !strings.Contains(c.Message, "not connected") || c.Action == "" {
		t.Errorf("no LAN: %+v", c)
	}
	r.failed(errors.New("mdns: open port 5353: udp4: address in use"))
	c, _ = b.Report().Get(CheckID)
	if c.Level != status.Error || !strings.Contains(c.Detail["error"], "5353") || c.Action == "" {
		t.Errorf("socket: %+v", c)
	}
}

// With no usable LAN interface Run reports an Error with an action and
// keeps trying; when its context ends it reports Off and returns nil.
func TestRunWithoutLAN(t *testing.T) {
	var b status.Board
	changed := make(chan status.Check, 16)
	b.OnChange(func(r status.Report) {
		if c, ok := r.Get(CheckID); ok {
			changed <- c
		}
	})
	r, err := New(Options{Reporter: &b, Interfaces: []string{"no-such-if0"}, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.After(5 * time.Second)
	nErr := 0
	for nErr < 2 { // reported, retried, reported again
		select {
		case c := <-changed:
			if c.Level == status.Error {
				nErr++
				if !strings.Contains(c.Message, "not connected") || c.Action == "" || c.Detail["interfaces"] != "no-such-if0" {
					t.Errorf("error check: %+v", c)
				}
			}
		case <-deadline:
			t.Fatal("no Error status")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if c, _ := b.Report().Get(CheckID); c.Level != status.Off || r.Name() != "" {
		t.Errorf("after Run: %+v, name %q", c, r.Name())
	}
}
