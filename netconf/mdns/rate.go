package mdns

import (
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// RFC 6762 §6: a responder must not multicast a record on an interface
// until a second has passed since it last multicast that record there; a
// querier asking again sooner already has it in its cache. Without this a
// single host asking 100 times a second made the box multicast 100
// answers a second to every device on the home network (issue 9). The
// one exception is defending a name
// against a probe, where the prober decides within 750 ms: then 250 ms
// is enough, and the answer is delayed to that rather than dropped.
const (
	multicastGap = time.Second
	probeGap     = 250 * time.Millisecond
)

// sentKey is one record on one interface and IP family. Each family
// counts as its own link, as avahi does: a record multicast to
// 224.0.0.251 never reached a host that listens only on ff02::fb.
type sentKey struct {
	ifindex int
	v6      bool
	rec     string // name, type and data (recordKey)
}

// sentLog remembers when each of our records was last multicast. It holds
// only our own records (a few per interface); entries old enough not to
// matter are dropped once it grows past maxSentLog, so interfaces and
// addresses that came and went cannot make it grow for ever.
type sentLog map[sentKey]time.Time

const maxSentLog = 256

// recordKey identifies a record regardless of TTL and the cache-flush bit.
func recordKey(rr dns.RR) string {
	h := rr.Header()
	return strings.ToLower(h.Name) + "\x00" + strconv.Itoa(int(h.Rrtype)) + "\x00" + string(rdata(rr))
}

// families lists the IP families (v6 true/false) that a multicast over f
// on ifc goes out on.
func families(ifc lanIface, f family) []bool {
	var out []bool
	if f != only6 && ifc.has4() {
		out = append(out, false)
	}
	if f != only4 && ifc.has6() {
		out = append(out, true)
	}
	return out
}

// due is the earliest time at or after now at which rr may be multicast
// again over f on ifc, keeping gap since its last multicast there.
func (l sentLog) due(rr dns.RR, ifc lanIface, f family, now time.Time, gap time.Duration) time.Time {
	at := now
	k := recordKey(rr)
	for _, v6 := range families(ifc, f) {
		if last, ok := l[sentKey{ifc.Index, v6, k}]; ok && last.Add(gap).After(at) {
			at = last.Add(gap)
		}
	}
	return at
}

// fresh returns the records of rrs that may be multicast over f on ifc
// at now: those not multicast there within the last multicastGap.
func (l sentLog) fresh(rrs []dns.RR, ifc lanIface, f family, now time.Time) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if !l.due(rr, ifc, f, now, multicastGap).After(now) {
			out = append(out, rr)
		}
	}
	return out
}

// mark records that the answers and additional records of m go out over
// f on ifc at time at.
func (l sentLog) mark(m *dns.Msg, ifc lanIface, f family, at time.Time) {
	if len(l) > maxSentLog {
		for k, t := range l {
			if at.Sub(t) >= multicastGap {
				delete(l, k)
			}
		}
	}
	for _, sec := range [][]dns.RR{m.Answer, m.Extra} {
		for _, rr := range sec {
			k := recordKey(rr)
			for _, v6 := range families(ifc, f) {
				l[sentKey{ifc.Index, v6, k}] = at
			}
		}
	}
}
