//go:build e2e

package mdns

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"

	"github.com/hearthchat/hearth/netconf/status"
)

// floodResult is what TestHelperFlood prints.
type floodResult struct {
	Sent     int                `json:"sent"`      // queries sent
	WindowMS int64              `json:"window_ms"` // how long it listened
	Packets  int                `json:"packets"`   // responses from the box on the group
	Records  map[string][]int64 `json:"records"`   // record → ms after start of each multicast
	Error    string             `json:"error,omitempty"`
}

// TestHelperFlood is not a test: it is the querier TestQueryFlood runs in
// a namespace of its own on the test network. Like a full mDNS stack it
// sends from port 5353 to 224.0.0.251 on eth0 (so its queries are not
// legacy one-shots), every 10 ms for HNC_MDNS_FOR, asking for the box's
// address and its service; it listens on the group, counting every
// record that HNC_MDNS_FROM multicasts, until a second and a half after
// the last query (shared answers come up to 120 ms late).
func TestHelperFlood(t *testing.T) {
	if os.Getenv(helperEnv) != "flood" {
		t.Skip("helper process for the e2e tests")
	}
	res := floodResult{Records: map[string][]int64{}}
	defer func() { json.NewEncoder(os.Stdout).Encode(res) }()
	fail := func(err error) { res.Error = err.Error() }
	d, err := time.ParseDuration(os.Getenv("HNC_MDNS_FOR"))
	if err != nil || d <= 0 || d > 5*time.Second {
		fail(fmt.Errorf("HNC_MDNS_FOR %q: want a duration up to 5s", os.Getenv("HNC_MDNS_FOR")))
		return
	}
	from := net.ParseIP(os.Getenv("HNC_MDNS_FROM"))
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		fail(err)
		return
	}
	lc := net.ListenConfig{Control: reuseAddr}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:5353")
	if err != nil {
		fail(err)
		return
	}
	defer pc.Close()
	p := ipv4.NewPacketConn(pc)
	group := &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}
	if err := p.JoinGroup(ifi, group); err != nil {
		fail(err)
		return
	}
	p.SetControlMessage(ipv4.FlagDst, true)
	p.SetMulticastInterface(ifi)
	p.SetMulticastTTL(255)
	p.SetMulticastLoopback(false)

	q := new(dns.Msg)
	q.Id = 0
	q.Question = []dns.Question{
		{Name: "hearth.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET},
		{Name: serviceType, Qtype: dns.TypePTR, Qclass: dns.ClassINET},
	}
	b, err := q.Pack()
	if err != nil {
		fail(err)
		return
	}

	start := time.Now()
	end := start.Add(d + 1500*time.Millisecond)
	// The reader owns res.Packets and res.Records until done is closed.
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 9000)
		for {
			p.SetReadDeadline(end)
			n, cm, src, err := p.ReadFrom(buf)
			if err != nil {
				return
			}
			ua, _ := src.(*net.UDPAddr)
			m := new(dns.Msg)
			if ua == nil || !ua.IP.Equal(from) || cm == nil || !cm.Dst.IsMulticast() || m.Unpack(buf[:n]) != nil || !m.Response {
				continue
			}
			at := time.Since(start).Milliseconds()
			res.Packets++
			for _, rr := range append(m.Answer, m.Extra...) {
				h := rr.Header()
				k := h.Name + " " + dns.TypeToString[h.Rrtype] + " " + strings.TrimSpace(strings.TrimPrefix(rr.String(), h.String()))
				res.Records[k] = append(res.Records[k], at)
			}
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	for now := range tick.C {
		if now.Sub(start) >= d {
			break
		}
		if _, err := p.WriteTo(b, nil, group); err != nil {
			fail(err)
			break
		}
		res.Sent++
	}
	tick.Stop()
	<-done
	res.WindowMS = time.Since(start).Milliseconds()
}

// floodFrom runs TestHelperFlood in namespace ns against box i. It runs
// off the test goroutine, so it reports failures in the result.
func floodFrom(ns string, i int, d time.Duration) floodResult {
	exe, err := os.Executable()
	if err != nil {
		return floodResult{Error: err.Error()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe, "-test.run", "^TestHelperFlood$")
	cmd.Env = append(os.Environ(), helperEnv+"=flood", "HNC_MDNS_FOR="+d.String(), "HNC_MDNS_FROM="+boxV4(i))
	out, err := cmd.Output()
	if err != nil {
		return floodResult{Error: fmt.Sprintf("%v\n%s", err, out)}
	}
	var res floodResult
	line, _, _ := bytes.Cut(out, []byte("\n"))
	if err := json.Unmarshal(line, &res); err != nil {
		return floodResult{Error: fmt.Sprintf("output %q: %v", out, err)}
	}
	return res
}

// A host on the LAN asking for the box 100 times a second, from the
// moment the box has its name, gets each record multicast at most once a
// second (RFC 6762 §6), announcements included, and no less: the box
// still answers every second. Meanwhile a phone (avahi, cold cache)
// still resolves the name over IPv4, where the flood is, and IPv6.
func TestQueryFlood(t *testing.T) {
	needTools(t)
	newLab(t, 2) // box 2's namespace is the flooder's; no responder runs there
	b := startBox(t, 1, "hearth", 80, 30*time.Second)
	b.waitLevel(status.OK)

	const d = 3 * time.Second
	resc := make(chan floodResult, 1)
	go func() {
		resc <- floodFrom(nsBox(2), 1, d)
	}()
	a := startAvahi(t)
	start := time.Now()
	wantResolves(t, a, "hearth.local", boxV4(1))
	out, err := a.exec(10*time.Second, "avahi-resolve", "-6", "-n", "hearth.local")
	if f := strings.Fields(out); err != nil || len(f) != 2 || !strings.HasPrefix(f[1], "f") {
		t.Errorf("avahi-resolve -6 -n hearth.local = %q, %v", out, err)
	}
	t.Logf("getent and avahi-resolve -6 done %v after avahi started", time.Since(start).Round(time.Millisecond))

	res := <-resc
	if res.Error != "" {
		t.Fatalf("flood helper: %+v", res)
	}
	window := time.Duration(res.WindowMS) * time.Millisecond
	maxSends := int(window/time.Second) + 1
	t.Logf("%d queries in %v; %d multicast responses from the box in %v", res.Sent, d, res.Packets, window)
	if res.Sent < 100 {
		t.Errorf("only %d queries sent in %v: the flood did not happen", res.Sent, d)
	}
	keys := make([]string, 0, len(res.Records))
	for k := range res.Records {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	aRecord := "hearth.local. A " + boxV4(1)
	for _, k := range keys {
		ts := res.Records[k]
		if len(ts) <= 10 {
			t.Logf("%-60s multicast at %v ms", k, ts)
		} else {
			t.Logf("%-60s multicast %d times, first at %v ms", k, len(ts), ts[:10])
		}
		if len(ts) > maxSends {
			t.Errorf("%s multicast %d times in %v, want at most %d", k, len(ts), window, maxSends)
		}
		for i := 1; i < len(ts); i++ {
			// The box keeps a full second; half of it is left for this
			// side's reader being slow on a busy machine. Without the
			// limit repeats come 10 ms apart.
			if gap := ts[i] - ts[i-1]; gap < 500 {
				t.Errorf("%s multicast again after %d ms", k, gap)
			}
		}
	}
	// And not less: while the flood lasts, the box multicasts the
	// address again as soon as its second is up (2 s allows for a busy
	// machine; without the announcements' wait, 1.12 s at most).
	var last int64
	for i, at := range append(res.Records[aRecord], d.Milliseconds()) {
		if at-last > 2000 {
			t.Errorf("%s: %d ms without a multicast of it (at %d), during a flood of queries for it", aRecord, at-last, i)
		}
		last = at
	}
	if res.Packets > 2*maxSends {
		t.Errorf("%d multicast responses in %v, want at most %d", res.Packets, window, 2*maxSends)
	}
}
