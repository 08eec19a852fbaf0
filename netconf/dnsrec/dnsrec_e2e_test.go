//go:build e2e

package dnsrec

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/dnsrec/knottest"
	"github.com/hearthchat/hearth/netconf/status"
)

// Check against a real authoritative server (Knot) holding a zone where
// some records are right, some missing and some wrong.
func TestCheckAgainstKnot(t *testing.T) {
	srv := knottest.Start(t, "club.example",
		"@ A 127.0.0.1",
		"groups CNAME club.example.",
		"upload A 127.0.0.9", // should be an alias of the domain: wrong address
		"_xmpp-client._tcp SRV 0 5 5222 club.example.",
		"_xmpp-server._tcp SRV 0 5 5270 club.example.", // wrong port
		"_xmpp-server._tcp.groups SRV 10 0 5269 club.example.",
		// _xmpps-client._tcp and _xmpp-server._tcp.upload missing
	)
	recs := Records(Options{Domain: "club.example", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := Check(ctx, srv.Addr, recs)

	want := map[string]State{
		"dns/club.example/A":                            Right,
		"dns/groups.club.example/CNAME":                 Right,
		"dns/upload.club.example/CNAME":                 Wrong,
		"dns/_xmpp-client._tcp.club.example/SRV":        Right,
		"dns/_xmpps-client._tcp.club.example/SRV":       Missing,
		"dns/_xmpp-server._tcp.club.example/SRV":        Wrong,
		"dns/_xmpp-server._tcp.groups.club.example/SRV": Right,
		"dns/_xmpp-server._tcp.upload.club.example/SRV": Missing,
	}
	if len(res) != len(want) {
		t.Fatalf("got %d results, want %d: %+v", len(res), len(want), res)
	}
	var b status.Board
	Report(&b, res)
	for _, r := range res {
		id := r.Record.ID()
		if r.State != want[id] {
			t.Errorf("%s: state %s (found %v, err %v), want %s", id, r.State, r.Found, r.Err, want[id])
		}
		c, ok := b.Report().Get(id)
		if !ok {
			t.Errorf("no status check %s", id)
			continue
		}
		switch r.State {
		case Right:
			if c.Level != status.OK || c.Action != "" {
				t.Errorf("%s: %+v", id, c)
			}
		case Missing, Wrong:
			if c.Level == status.OK || !strings.HasPrefix(c.Action, "At your domain host,") || !strings.Contains(c.Action, r.Record.Value) {
				t.Errorf("%s: %+v", id, c)
			}
		}
	}
	byID := map[string]Result{}
	for _, r := range res {
		byID[r.Record.ID()] = r
	}
	if got := byID["dns/_xmpp-server._tcp.club.example/SRV"].Found; !slices.Equal(got, []string{"0 5 5270 club.example"}) {
		t.Errorf("wrong SRV found %v", got)
	}
	if got := byID["dns/upload.club.example/CNAME"].Found; !slices.Equal(got, []string{"127.0.0.9"}) {
		t.Errorf("upload found %v", got)
	}
	c, _ := b.Report().Get("dns/_xmpps-client._tcp.club.example/SRV")
	if c.Action != "At your domain host, add a record: type SRV, name _xmpps-client._tcp.club.example, value 0 5 5223 club.example." {
		t.Errorf("action %q", c.Action)
	}
	if c.Level != status.Warn {
		t.Errorf("missing optional SRV level %s", c.Level)
	}
	c, _ = b.Report().Get("dns/_xmpp-server._tcp.club.example/SRV")
	if c.Level != status.Error || !strings.Contains(c.Message, "5270") {
		t.Errorf("wrong SRV check %+v", c)
	}
	// Federation: the file-sharing service has its own _xmpp-server record
	// (xmppd/s2s serves it on its own streams; dialback connects back to it).
	c, _ = b.Report().Get("dns/_xmpp-server._tcp.upload.club.example/SRV")
	if c.Action != "At your domain host, add a record: type SRV, name _xmpp-server._tcp.upload.club.example, value 0 5 5269 club.example." ||
		c.Title != "Where other servers find the shared files" {
		t.Errorf("upload federation SRV check %+v", c)
	}
	// Federation off: no server records are asked for.
	for _, r := range Records(Options{Domain: "club.example", NoS2S: true}) {
		if strings.HasPrefix(r.Name, "_xmpp-server.") {
			t.Errorf("federation off still wants %s", r)
		}
	}
}

// A server that does not answer: every record is Unknown, as a warning.
func TestCheckServerDown(t *testing.T) {
	recs := Records(Options{Domain: "club.example"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A port nobody listens on; UDP gets "connection refused" quickly.
	res := Check(ctx, "127.0.0.1:9", recs[:1])
	if res[0].State != Unknown || res[0].Err == nil {
		t.Fatalf("%+v", res[0])
	}
	if c := res[0].Check(); c.Level != status.Warn || c.Action == "" {
		t.Fatalf("%+v", c)
	}
}

// Dynamic DNS through libdns/rfc2136 against Knot: the home address
// changes, the A record follows; an IPv6 address adds AAAA; a bad key
// shows an error with an action and retries with back-off.
func TestDynDNSAgainstKnot(t *testing.T) {
	srv := knottest.Start(t, "club.example", "@ A 127.0.0.2")
	p, err := NewProvider(config.DNS{Provider: "rfc2136", Settings: srv.Settings()})
	if err != nil {
		t.Fatal(err)
	}
	var b status.Board
	u := NewUpdater(UpdaterOptions{Provider: p, Zone: Zone(config.DNS{}, "club.example"), Name: "club.example",
		TTL: time.Minute, Reporter: &b, MinRetry: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addrs := make(chan []netip.Addr)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); u.Run(ctx, addrs) }()
	defer wg.Wait()
	defer cancel()

	waitFor := func(what string, f func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if f() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	lookup := func(typ uint16) []string { return srv.Lookup(t, "club.example", typ) }

	if got := lookup(dns.TypeA); !slices.Equal(got, []string{"127.0.0.2"}) {
		t.Fatalf("start: A %v", got)
	}
	addrs <- []netip.Addr{netip.MustParseAddr("127.0.0.3")}
	waitFor("A 127.0.0.3", func() bool { return slices.Equal(lookup(dns.TypeA), []string{"127.0.0.3"}) })
	waitFor("ddns ok", func() bool { c, _ := b.Report().Get(CheckDDNS); return c.Level == status.OK })

	addrs <- []netip.Addr{netip.MustParseAddr("127.0.0.4"), netip.MustParseAddr("::1")}
	waitFor("A 127.0.0.4 + AAAA ::1", func() bool {
		return slices.Equal(lookup(dns.TypeA), []string{"127.0.0.4"}) && slices.Equal(lookup(dns.TypeAAAA), []string{"::1"})
	})
	// The live check agrees.
	res := Check(ctx, srv.Addr, Records(Options{Domain: "club.example",
		Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.4"), netip.MustParseAddr("::1")}})[:2])
	for _, r := range res {
		if r.State != Right {
			t.Errorf("after update: %s %s found %v", r.Record.ID(), r.State, r.Found)
		}
	}
	// IPv6 gone: the stale AAAA we set is removed.
	addrs <- []netip.Addr{netip.MustParseAddr("127.0.0.4")}
	waitFor("AAAA removed", func() bool { return len(lookup(dns.TypeAAAA)) == 0 })

	// A wrong key: the server refuses, the status says so, nothing changes.
	bad := srv.Settings()
	bad["key"] = "d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5d3JvbmdrZXk="
	pb, err := NewProvider(config.DNS{Provider: "rfc2136", Settings: bad})
	if err != nil {
		t.Fatal(err)
	}
	var bb status.Board
	ub := NewUpdater(UpdaterOptions{Provider: pb, Zone: "club.example.", Name: "club.example",
		Reporter: &bb, MinRetry: 100 * time.Millisecond, MaxRetry: 200 * time.Millisecond})
	bctx, bcancel := context.WithCancel(ctx)
	baddrs := make(chan []netip.Addr, 1)
	baddrs <- []netip.Addr{netip.MustParseAddr("127.0.0.66")}
	done := make(chan struct{})
	go func() { ub.Run(bctx, baddrs); close(done) }()
	waitFor("ddns error, retried", func() bool {
		c, _ := bb.Report().Get(CheckDDNS)
		n, _ := strconv.Atoi(c.Detail["failures"])
		return c.Level == status.Error && c.Action != "" && c.Detail["retry_at"] != "" && n >= 3
	})
	c, _ := bb.Report().Get(CheckDDNS)
	t.Logf("bad key: %s / %s / %s", c.Message, c.Action, c.Detail["error"])
	bcancel()
	<-done
	if got := lookup(dns.TypeA); !slices.Equal(got, []string{"127.0.0.4"}) {
		t.Fatalf("bad key changed A to %v", got)
	}
}

// Watch reports every round and drops checks for records no longer wanted.
func TestWatchAgainstKnot(t *testing.T) {
	srv := knottest.Start(t, "club.example", "@ A 127.0.0.1")
	var mu sync.Mutex
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	records := func() []Record {
		mu.Lock()
		defer mu.Unlock()
		return Records(Options{Domain: "club.example", Addrs: addrs, NoGroups: true, NoUpload: true})
	}
	var b status.Board
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, srv.Addr, records, &b, 100*time.Millisecond) }()
	wait := func(what string, f func(status.Report) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if f(b.Report()) {
				return
			}
		}
		t.Fatalf("timed out waiting for %s: %+v", what, b.Report())
	}
	wait("A right", func(r status.Report) bool { c, _ := r.Get("dns/club.example/A"); return c.Level == status.OK })
	mu.Lock()
	addrs = []netip.Addr{netip.MustParseAddr("::1")}
	mu.Unlock()
	wait("A check gone, AAAA missing", func(r status.Report) bool {
		_, hasA := r.Get("dns/club.example/A")
		c, _ := r.Get("dns/club.example/AAAA")
		return !hasA && c.Level == status.Error && c.Detail["state"] == "missing"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Dynamic DNS writes the server records too where the DNS host takes them:
// after the first address update every record the domain needs, the
// federation ones (_xmpp-server for the domain, groups. and upload.)
// included, is right at a real server (Knot over RFC 2136). Before, only
// A/AAAA were written and the person had to type the SRV records by hand.
func TestDynDNSWritesServerRecordsAgainstKnot(t *testing.T) {
	srv := knottest.Start(t, "club.example", "@ A 127.0.0.2")
	dc := config.DNS{Provider: "rfc2136", Settings: srv.Settings()}
	if !ServiceRecords(dc) || ServiceRecords(config.DNS{Provider: "duckdns"}) {
		t.Fatalf("ServiceRecords: rfc2136 %v, duckdns %v", ServiceRecords(dc), ServiceRecords(config.DNS{Provider: "duckdns"}))
	}
	p, err := NewProvider(dc)
	if err != nil {
		t.Fatal(err)
	}
	var b status.Board
	u := NewUpdater(UpdaterOptions{Provider: p, Zone: Zone(config.DNS{}, "club.example"), Name: "club.example",
		Reporter: &b, MinRetry: 100 * time.Millisecond, Records: Records(Options{Domain: "club.example"})})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addrs := make(chan []netip.Addr, 1)
	done := make(chan struct{})
	go func() { u.Run(ctx, addrs); close(done) }()
	defer func() { cancel(); <-done }()
	addrs <- []netip.Addr{netip.MustParseAddr("127.0.0.3")}
	want := Records(Options{Domain: "club.example", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.3")}})
	var res []Result
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res = Check(ctx, srv.Addr, want)
		ok := true
		for _, r := range res {
			ok = ok && r.State == Right
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			for _, r := range res {
				t.Errorf("%s: %s (found %v, err %v)", r.Record.ID(), r.State, r.Found, r.Err)
			}
			c, _ := b.Report().Get(CheckDDNS)
			t.Fatalf("records not all right; ddns check %+v", c)
		}
	}
	var fed int
	for _, r := range res {
		if strings.HasPrefix(r.Record.Name, "_xmpp-server._tcp.") {
			fed++
		}
	}
	if fed != 3 {
		t.Errorf("%d federation records checked, want 3 (domain, groups., upload.)", fed)
	}
}
