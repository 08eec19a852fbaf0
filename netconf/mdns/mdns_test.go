package mdns

import (
	"context"
	"errors"
	"fmt"
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

// sends collects when each record went out by multicast, per family, in a
// rate-limit test driven by a fake clock.
type sends map[string][]time.Time

func (s sends) add(r reply, at time.Time) {
	if r.multi == nil {
		return
	}
	for _, sec := range [][]dns.RR{r.multi.Answer, r.multi.Extra} {
		for _, rr := range sec {
			k := fmt.Sprintf("%d %s", r.fam, rr.String())
			s[k] = append(s[k], at.Add(r.delay))
		}
	}
}

// check fails t when a record went out twice within gap, and returns
// how often the one sent most often went out.
func (s sends) check(t *testing.T, gap time.Duration) (most int) {
	t.Helper()
	for k, ts := range s {
		for i := 1; i < len(ts); i++ {
			if d := ts[i].Sub(ts[i-1]); d < gap {
				t.Errorf("%s multicast again after %v (at %d of %d)", k, d, i, len(ts))
			}
		}
		most = max(most, len(ts))
	}
	return most
}

func mquery(name string, qtype uint16, from string) packet {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0
	return packet{msg: m, src: netip.MustParseAddrPort(from), ifindex: dual.Index, multicast: true}
}

// RFC 6762 §6: a querier asking 100 times a second for 3 s gets each
// record multicast at most once a second, and still once each second.
func TestMulticastRateLimit(t *testing.T) {
	z := newZone("hearth", 8080)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		q    packet
	}{
		{"A over IPv4", mquery("hearth.local.", dns.TypeA, "192.168.1.9:5353")},
		{"AAAA over IPv6", mquery("hearth.local.", dns.TypeAAAA, "[fe80::9]:5353")},
		{"browse (shared, delayed)", mquery("_http._tcp.local.", dns.TypePTR, "192.168.1.9:5353")},
		{"SRV", mquery("hearth._http._tcp.local.", dns.TypeSRV, "192.168.1.9:5353")},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &session{sent: sentLog{}}
			got := sends{}
			answered := 0
			for i := range 300 {
				now := t0.Add(time.Duration(i) * 10 * time.Millisecond)
				r := s.plan(c.q, dual, z, now)
				if r.uni != nil {
					t.Fatalf("unicast reply to a multicast query: %v", r.uni)
				}
				if r.multi != nil {
					answered++
				}
				got.add(r, now)
			}
			if most := got.check(t, multicastGap); most != 3 || answered != 3 {
				t.Errorf("%d of 300 queries answered, a record sent up to %d times; want 3 (one a second)", answered, most)
			}
		})
	}
}

// The limit is per interface and per family; unicast replies (QU
// questions, legacy one-shot queries) are not held back.
func TestMulticastRateLimitScope(t *testing.T) {
	z := newZone("hearth", 8080)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &session{sent: sentLog{}}
	q4 := mquery("hearth.local.", dns.TypeANY, "192.168.1.9:5353")
	if r := s.plan(q4, dual, z, now); r.multi == nil || r.fam != only4 {
		t.Fatalf("first query: %+v", r)
	}
	if r := s.plan(q4, dual, z, now.Add(500*time.Millisecond)); r.multi != nil {
		t.Errorf("repeated within the second: %v", r.multi)
	}
	if r := s.plan(mquery("hearth.local.", dns.TypeANY, "[fe80::9]:5353"), dual, z, now.Add(500*time.Millisecond)); r.multi == nil || r.fam != only6 {
		t.Errorf("IPv6 query held back by an IPv4 multicast: %+v", r)
	}
	other := dual
	other.Index = 3
	if r := s.plan(q4, other, z, now.Add(500*time.Millisecond)); r.multi == nil {
		t.Error("query on another interface held back")
	}

	qu := mquery("hearth.local.", dns.TypeA, "192.168.1.9:5353")
	qu.msg.Question[0].Qclass |= unicastQ
	legacy := mquery("hearth.local.", dns.TypeA, "192.168.1.9:40000")
	legacy.msg.Id = 77
	for i := range 100 {
		at := now.Add(time.Duration(i) * 10 * time.Millisecond)
		if r := s.plan(qu, dual, z, at); r.uni == nil || r.multi != nil {
			t.Fatalf("QU query %d: %+v", i, r)
		}
		if r := s.plan(legacy, dual, z, at); r.uni == nil || r.uni.Id != 77 || r.multi != nil {
			t.Fatalf("legacy query %d: %+v", i, r)
		}
	}
}

// A probe for our name is answered even right after a multicast, only
// delayed to keep 250 ms (RFC 6762 §6), so the prober learns in time.
func TestProbeDefenceRate(t *testing.T) {
	z := newZone("hearth", 8080)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &session{sent: sentLog{}}
	if r := s.plan(mquery("hearth.local.", dns.TypeA, "192.168.1.9:5353"), dual, z, now); r.multi == nil {
		t.Fatal("no answer")
	}
	other := newZone("hearth", 80)
	probe := mquery("hearth.local.", dns.TypeANY, "192.168.1.7:5353")
	probe.msg.Ns = other.hostRecords(testIface("192.168.1.7/24"))
	r := s.plan(probe, dual, z, now.Add(100*time.Millisecond))
	if r.multi == nil || r.delay != 150*time.Millisecond {
		t.Fatalf("probe 100 ms after a multicast: %+v, want an answer delayed 150 ms", r)
	}
	r = s.plan(probe, dual, z, now.Add(time.Second))
	if r.multi == nil || r.delay != 0 {
		t.Errorf("probe 750 ms after the last answer: %+v, want one at once", r)
	}
}

// An announcement due less than a second after an answer waits for the
// rest of that second.
func TestAnnounceKeepsGap(t *testing.T) {
	z := newZone("hearth", 8080)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &session{sent: sentLog{}, ifs: []lanIface{dual}}
	if due := s.announceDue(z, now); !due.Equal(now) {
		t.Errorf("nothing sent yet, announcement due at %v, want now", due.Sub(now))
	}
	s.plan(mquery("hearth._http._tcp.local.", dns.TypeSRV, "192.168.1.9:5353"), dual, z, now)
	if due := s.announceDue(z, now.Add(300*time.Millisecond)); !due.Equal(now.Add(time.Second)) {
		t.Errorf("announcement 300 ms after an answer due at +%v, want +1s", due.Sub(now))
	}
}
