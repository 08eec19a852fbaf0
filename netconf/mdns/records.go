package mdns

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

const (
	serviceType = "_http._tcp.local."
	metaQuery   = "_services._dns-sd._udp.local."

	// TTLs as RFC 6762 §10 recommends: records naming a host 120 s, the
	// others 75 minutes.
	ttlHost  = 120
	ttlOther = 4500
	// A legacy (one-shot) resolver caches what we send like any DNS
	// answer; RFC 6762 §6.7 caps it at 10 s so a renamed box is not
	// remembered for long.
	ttlLegacy = 10

	cacheFlush = 1 << 15 // top bit of rrclass in responses (RFC 6762 §10.2)
	unicastQ   = 1 << 15 // top bit of qclass in questions (RFC 6762 §5.4)
)

// zone is the set of names the box owns under one host label.
type zone struct {
	label    string // "hearth-2"
	host     string // "hearth-2.local."
	instance string // "hearth-2._http._tcp.local."
	port     uint16
	txt      []string
}

func newZone(label string, port int) zone {
	return zone{
		label:    label,
		host:     label + ".local.",
		instance: label + "." + serviceType,
		port:     uint16(port),
		txt:      []string{"path=/"},
	}
}

// candidate is the n-th name to try for base: base, base-2, base-3, …
func candidate(base string, n int) string {
	if n <= 1 {
		return base
	}
	suffix := fmt.Sprintf("-%d", n)
	if len(base)+len(suffix) > 63 {
		base = strings.TrimRight(base[:63-len(suffix)], "-")
	}
	return base + suffix
}

// validLabel reports whether s can be a single DNS label we own: letters,
// digits and inner hyphens (RFC 1123), at most 63 bytes.
func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// hostRecords are the A and AAAA records of the host name as seen on one
// interface: a phone on the Wi-Fi gets the Wi-Fi address, not the cable's.
func (z zone) hostRecords(ifc lanIface) []dns.RR {
	var rrs []dns.RR
	for _, a := range ifc.Addrs {
		if a.Is4() {
			b := a.As4()
			rrs = append(rrs, &dns.A{Hdr: hdr(z.host, dns.TypeA, ttlHost), A: b[:]})
		} else {
			b := a.As16()
			rrs = append(rrs, &dns.AAAA{Hdr: hdr(z.host, dns.TypeAAAA, ttlHost), AAAA: b[:]})
		}
	}
	return rrs
}

func (z zone) srv() *dns.SRV {
	return &dns.SRV{Hdr: hdr(z.instance, dns.TypeSRV, ttlHost), Port: z.port, Target: z.host}
}

func (z zone) txtRR() *dns.TXT {
	return &dns.TXT{Hdr: hdr(z.instance, dns.TypeTXT, ttlOther), Txt: z.txt}
}

func (z zone) ptr() *dns.PTR {
	return &dns.PTR{Hdr: hdr(serviceType, dns.TypePTR, ttlOther), Ptr: z.instance}
}

func (z zone) metaPTR() *dns.PTR {
	return &dns.PTR{Hdr: hdr(metaQuery, dns.TypePTR, ttlOther), Ptr: serviceType}
}

// all is every record we own on ifc, for announcements and goodbyes.
func (z zone) all(ifc lanIface) []dns.RR {
	rrs := z.hostRecords(ifc)
	return append(rrs, z.srv(), z.txtRR(), z.ptr(), z.metaPTR())
}

// shared reports whether rr is a shared record (a PTR that other boxes
// publish too); all others are unique to us and carry the cache-flush bit.
func shared(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypePTR }

// nsec says which types a name of ours has, so a resolver asking for a
// type we do not have (AAAA on an IPv4-only network) gets an answer at
// once instead of waiting for a timeout (RFC 6762 §6.1).
func (z zone) nsec(name string, ifc lanIface) *dns.NSEC {
	var types []uint16
	switch name {
	case z.host:
		if ifc.has4() {
			types = append(types, dns.TypeA)
		}
		if ifc.has6() {
			types = append(types, dns.TypeAAAA)
		}
	case z.instance:
		types = []uint16{dns.TypeTXT, dns.TypeSRV}
	}
	return &dns.NSEC{Hdr: hdr(name, dns.TypeNSEC, ttlHost), NextDomain: name, TypeBitMap: types}
}

// answer returns what we say to question q received on ifc: answers, and
// additional records that save the asker a round trip.
func (z zone) answer(q dns.Question, ifc lanIface) (ans, extra []dns.RR) {
	name := strings.ToLower(q.Name)
	match := func(t uint16) bool { return q.Qtype == t || q.Qtype == dns.TypeANY }
	switch name {
	case z.host:
		for _, rr := range z.hostRecords(ifc) {
			if match(rr.Header().Rrtype) {
				ans = append(ans, rr)
			} else {
				extra = append(extra, rr)
			}
		}
		if len(ans) == 0 && q.Qtype != dns.TypeANY {
			// We own the name but not this type: say so.
			ans = append(ans, z.nsec(z.host, ifc))
			extra = nil
		} else if !(ifc.has4() && ifc.has6()) {
			extra = append(extra, z.nsec(z.host, ifc))
		}
	case z.instance:
		if match(dns.TypeSRV) {
			ans = append(ans, z.srv())
		}
		if match(dns.TypeTXT) {
			ans = append(ans, z.txtRR())
		}
		if len(ans) == 0 {
			return []dns.RR{z.nsec(z.instance, ifc)}, nil
		}
		if ans[0].Header().Rrtype == dns.TypeSRV {
			extra = z.hostRecords(ifc)
		}
	case serviceType:
		if match(dns.TypePTR) {
			ans = append(ans, z.ptr())
			extra = append([]dns.RR{z.srv(), z.txtRR()}, z.hostRecords(ifc)...)
		}
	case metaQuery:
		if match(dns.TypePTR) {
			ans = append(ans, z.metaPTR())
		}
	}
	return ans, extra
}

// suppress drops the answers the asker listed as already known with at
// least half their TTL left (RFC 6762 §7.1).
func suppress(ans []dns.RR, known []dns.RR) []dns.RR {
	out := ans[:0:0]
next:
	for _, rr := range ans {
		for _, k := range known {
			if k.Header().Ttl >= rr.Header().Ttl/2 && sameRecord(k, rr) {
				continue next
			}
		}
		out = append(out, rr)
	}
	return out
}

// sameRecord compares name, type and data; class bits and TTL may differ.
func sameRecord(a, b dns.RR) bool {
	ah, bh := a.Header(), b.Header()
	if !strings.EqualFold(ah.Name, bh.Name) || ah.Rrtype != bh.Rrtype {
		return false
	}
	ra, rb := rdata(a), rdata(b)
	return ra != nil && bytes.Equal(ra, rb)
}

// rdata is the record's data in wire form (names uncompressed and
// lowercased), for comparing records as RFC 6762 §8.2 does.
func rdata(rr dns.RR) []byte {
	c := dns.Copy(rr)
	h := c.Header()
	h.Name = "."
	h.Class &^= cacheFlush
	switch r := c.(type) {
	case *dns.SRV:
		r.Target = strings.ToLower(r.Target)
	case *dns.PTR:
		r.Ptr = strings.ToLower(r.Ptr)
	}
	buf := make([]byte, dns.Len(c)+16)
	n, err := dns.PackRR(c, buf, 0, nil, false)
	if err != nil {
		return nil
	}
	// Root name (1) + type, class, ttl, rdlength (10).
	if n < 11 {
		return nil
	}
	return buf[11:n]
}

// response builds an mDNS response (RFC 6762 §18): no question, ID 0,
// authoritative, cache-flush on unique records.
func response(ans, extra []dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.Response = true
	m.Authoritative = true
	m.Answer = withFlush(ans)
	m.Extra = withFlush(extra)
	return m
}

func withFlush(rrs []dns.RR) []dns.RR {
	out := make([]dns.RR, 0, len(rrs))
	for _, rr := range rrs {
		c := dns.Copy(rr)
		if !shared(c) {
			c.Header().Class |= cacheFlush
		}
		out = append(out, c)
	}
	return out
}

// legacyResponse answers a one-shot query from a plain resolver (source
// port not 5353, RFC 6762 §6.7) the way a unicast DNS server would: same
// ID, the question repeated, no cache-flush bits, short TTLs.
func legacyResponse(q *dns.Msg, ans, extra []dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.Id = q.Id
	m.Response = true
	m.Authoritative = true
	m.RecursionDesired = q.RecursionDesired
	m.Question = append([]dns.Question(nil), q.Question...)
	for i := range m.Question {
		m.Question[i].Qclass &^= unicastQ
	}
	cap := func(rrs []dns.RR) []dns.RR {
		out := make([]dns.RR, 0, len(rrs))
		for _, rr := range rrs {
			c := dns.Copy(rr)
			c.Header().Ttl = min(c.Header().Ttl, ttlLegacy)
			out = append(out, c)
		}
		return out
	}
	m.Answer, m.Extra = cap(ans), cap(extra)
	return m
}

// dedup drops from extra what is already in ans, and repeats within extra.
func dedup(extra, ans []dns.RR) []dns.RR {
	var out []dns.RR
next:
	for _, rr := range extra {
		for _, a := range append(ans[:len(ans):len(ans)], out...) {
			if sameRecord(a, rr) {
				continue next
			}
		}
		out = append(out, rr)
	}
	return out
}

func inClass(q dns.Question) bool {
	c := q.Qclass &^ unicastQ
	return c == dns.ClassINET || c == dns.ClassANY
}

func withoutNSEC(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype != dns.TypeNSEC {
			out = append(out, rr)
		}
	}
	return out
}

// legacyReply is our answer to a one-shot query, or nil when none of its
// names is ours (mDNS responders stay silent then). A plain resolver
// knows nothing of NSEC: for a name we own but a type we lack (AAAA on an
// IPv4-only network) it gets an empty authoritative answer at once rather
// than waiting for a timeout.
func (z zone) legacyReply(q *dns.Msg, ifc lanIface) *dns.Msg {
	var ans, extra []dns.RR
	owned := false
	for _, qu := range q.Question {
		if !inClass(qu) {
			continue
		}
		a, e := z.answer(qu, ifc)
		owned = owned || len(a) > 0
		ans, extra = append(ans, withoutNSEC(a)...), append(extra, withoutNSEC(e)...)
	}
	if !owned {
		return nil
	}
	return legacyResponse(q, ans, dedup(extra, ans))
}

// goodbye is every record we own on ifc with TTL 0: peers drop them from
// their caches within a second (RFC 6762 §10.1).
func (z zone) goodbye(ifc lanIface) *dns.Msg {
	rrs := z.all(ifc)
	for _, rr := range rrs {
		rr.Header().Ttl = 0
	}
	return response(rrs, nil)
}

// probe is the query that asks whether anyone else uses our names
// (RFC 6762 §8.1): ANY questions with the unicast-response bit, our
// proposed records in the authority section for tie-breaking.
func (z zone) probe(ifc lanIface) *dns.Msg {
	m := new(dns.Msg)
	m.Question = []dns.Question{
		{Name: z.host, Qtype: dns.TypeANY, Qclass: dns.ClassINET | unicastQ},
		{Name: z.instance, Qtype: dns.TypeANY, Qclass: dns.ClassINET | unicastQ},
	}
	m.Ns = append(z.hostRecords(ifc), z.srv(), z.txtRR())
	return m
}

// conflictIn reports whether a response m from another host claims one of
// our names with data that is not ours. addrsOurs tells our addresses
// apart from a stranger's (the host name may rightly carry any of them).
func (z zone) conflictIn(m *dns.Msg, addrsOurs func(netip.Addr) bool) bool {
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			switch strings.ToLower(h.Name) {
			case z.host:
				var a netip.Addr
				switch r := rr.(type) {
				case *dns.A:
					a, _ = netip.AddrFromSlice(r.A.To4())
				case *dns.AAAA:
					a, _ = netip.AddrFromSlice(r.AAAA.To16())
				default:
					continue
				}
				if h.Ttl > 0 && !addrsOurs(a.Unmap()) {
					return true
				}
			case z.instance:
				var mine dns.RR
				switch rr.(type) {
				case *dns.SRV:
					mine = z.srv()
				case *dns.TXT:
					mine = z.txtRR()
				default:
					continue
				}
				if h.Ttl > 0 && !sameRecord(rr, mine) {
					return true
				}
			}
		}
	}
	return false
}

// tieBreak compares a simultaneous probe from another host with ours
// (RFC 6762 §8.2): the records each proposes for the contested names,
// sorted by class, type and data, compared in order. It returns -1 when
// we lose (our data is lexicographically earlier), 1 when we win, 0 when
// the probe does not contend for our names or proposes the same data.
func (z zone) tieBreak(theirProbe *dns.Msg, ours *dns.Msg) int {
	contends := false
	for _, q := range theirProbe.Question {
		n := strings.ToLower(q.Name)
		if n == z.host || n == z.instance {
			contends = true
		}
	}
	if !contends || len(theirProbe.Ns) == 0 {
		return 0
	}
	for _, name := range []string{z.host, z.instance} {
		a, b := sortedKeys(ours.Ns, name), sortedKeys(theirProbe.Ns, name)
		if len(b) == 0 {
			continue
		}
		for i := 0; i < len(a) && i < len(b); i++ {
			if c := bytes.Compare(a[i], b[i]); c != 0 {
				return c
			}
		}
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
	}
	return 0
}

// sortedKeys are the records for name as class|type|rdata byte strings,
// sorted: the order RFC 6762 §8.2 compares them in.
func sortedKeys(rrs []dns.RR, name string) [][]byte {
	var keys [][]byte
	for _, rr := range rrs {
		h := rr.Header()
		if !strings.EqualFold(h.Name, name) {
			continue
		}
		k := []byte{byte(h.Class >> 8 & 0x7f), byte(h.Class), byte(h.Rrtype >> 8), byte(h.Rrtype)}
		keys = append(keys, append(k, rdata(rr)...))
	}
	slices.SortFunc(keys, bytes.Compare)
	return keys
}

// jitter is a random duration in [lo, hi).
func jitter(lo, hi int64) int64 { return lo + rand.Int64N(hi-lo) }
