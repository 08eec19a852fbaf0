package dnsrec

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"
	"github.com/libdns/rfc2136"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/status"
)

func TestRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"full", Options{Domain: "Club.Example.", Addrs: []netip.Addr{
			netip.MustParseAddr("::ffff:203.0.113.7"), netip.MustParseAddr("2001:db8::7")}}, []string{
			"club.example. 300 IN A 203.0.113.7",
			"club.example. 300 IN AAAA 2001:db8::7",
			"groups.club.example. 300 IN CNAME club.example",
			"upload.club.example. 300 IN CNAME club.example",
			"_xmpp-client._tcp.club.example. 300 IN SRV 0 5 5222 club.example",
			"_xmpps-client._tcp.club.example. 300 IN SRV 0 5 5223 club.example",
			"_xmpp-server._tcp.club.example. 300 IN SRV 0 5 5269 club.example",
			"_xmpp-server._tcp.groups.club.example. 300 IN SRV 0 5 5269 club.example",
			"_xmpp-server._tcp.upload.club.example. 300 IN SRV 0 5 5269 club.example",
		}},
		{"federation off", Options{Domain: "c.example", NoS2S: true}, []string{
			"groups.c.example. 300 IN CNAME c.example",
			"upload.c.example. 300 IN CNAME c.example",
			"_xmpp-client._tcp.c.example. 300 IN SRV 0 5 5222 c.example",
			"_xmpps-client._tcp.c.example. 300 IN SRV 0 5 5223 c.example",
		}},
		{"ports, no groups, no addresses", Options{Domain: "c.example", C2S: 15222, C2STLS: 15223, S2S: 15269,
			NoGroups: true, NoUpload: true, TTL: time.Hour}, []string{
			"_xmpp-client._tcp.c.example. 3600 IN SRV 0 5 15222 c.example",
			"_xmpps-client._tcp.c.example. 3600 IN SRV 0 5 15223 c.example",
			"_xmpp-server._tcp.c.example. 3600 IN SRV 0 5 15269 c.example",
		}},
		{"no domain", Options{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := Records(tc.o)
			var got []string
			for _, r := range rs {
				got = append(got, r.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	if id := (Record{Name: "_xmpp-client._tcp.club.example", Type: "SRV"}).ID(); id != "dns/_xmpp-client._tcp.club.example/SRV" {
		t.Errorf("ID %q", id)
	}
}

func TestNewProvider(t *testing.T) {
	good := map[string]string{"server": "127.0.0.1:53", "key_name": "k.", "key_alg": "hmac-sha256", "key": "c2VjcmV0", "zone": "example.org"}
	p, err := NewProvider(config.DNS{Provider: "rfc2136", Settings: good})
	if err != nil {
		t.Fatal(err)
	}
	rp, ok := p.(*rfc2136.Provider)
	if !ok || rp.Server != "127.0.0.1:53" || rp.KeyName != "k." || rp.KeyAlg != "hmac-sha256" || rp.Key != "c2VjcmV0" {
		t.Fatalf("provider %#v", p)
	}
	if _, err := NewProvider(config.DNS{}); !errors.Is(err, ErrNoProvider) {
		t.Errorf("no provider: %v", err)
	}
	for name, c := range map[string]config.DNS{
		"unknown provider": {Provider: "nope", Settings: good},
		"missing key":      {Provider: "rfc2136", Settings: map[string]string{"server": "x:53", "key_name": "k."}},
		"typo":             {Provider: "rfc2136", Settings: map[string]string{"server": "x:53", "key_name": "k.", "key": "a", "keyalg": "x"}},
	} {
		if _, err := NewProvider(c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if z := Zone(config.DNS{Settings: good}, "hearth.example.org"); z != "example.org." {
		t.Errorf("zone %q", z)
	}
	if z := Zone(config.DNS{}, "Club.Example"); z != "club.example." {
		t.Errorf("zone %q", z)
	}
}

func TestResultWording(t *testing.T) {
	srv := Record{Name: "_xmpp-client._tcp.club.example", Type: "SRV", Value: "0 5 5222 club.example"}
	a := Record{Name: "club.example", Type: "A", Value: "203.0.113.7"}
	for _, tc := range []struct {
		r      Result
		level  status.Level
		action string
	}{
		{Result{Record: srv, State: Missing}, status.Warn,
			"At your domain host, add a record: type SRV, name _xmpp-client._tcp.club.example, value 0 5 5222 club.example."},
		{Result{Record: a, State: Missing}, status.Error,
			"At your domain host, add a record: type A, name club.example, value 203.0.113.7."},
		{Result{Record: a, State: Wrong, Found: []string{"198.51.100.1"}}, status.Error,
			"At your domain host, change the record: type A, name club.example, to the value 203.0.113.7 (it now says 198.51.100.1)."},
		{Result{Record: a, State: Right, Found: []string{"203.0.113.7"}}, status.OK, ""},
		{Result{Record: a, State: Unknown, Err: errors.New("timeout")}, status.Warn,
			"Check that the box is connected to the internet. It checks again by itself."},
	} {
		c := tc.r.Check()
		if c.ID != tc.r.Record.ID() || c.Level != tc.level || c.Action != tc.action || c.Message == "" || c.Title == "" {
			t.Errorf("%s %s: %+v", tc.r.Record.ID(), tc.r.State, c)
		}
	}
}

func TestCompareSet(t *testing.T) {
	for _, tc := range []struct {
		found, want []string
		s           State
	}{
		{nil, []string{"1.2.3.4"}, Missing},
		{[]string{"1.2.3.4"}, []string{"1.2.3.4"}, Right},
		{[]string{"::ffff:1.2.3.4"}, []string{"1.2.3.4"}, Right},
		{[]string{"1.2.3.4", "5.6.7.8"}, []string{"1.2.3.4"}, Wrong},
		{[]string{"5.6.7.8"}, []string{"1.2.3.4"}, Wrong},
		{[]string{"2001:DB8::1"}, []string{"2001:db8:0::1"}, Right},
	} {
		if s := compareSet(tc.found, tc.want); s != tc.s {
			t.Errorf("%v vs %v: %s, want %s", tc.found, tc.want, s, tc.s)
		}
	}
}

// srvRefuser is a DNS host that takes address records but refuses SRV and
// CNAME ones (a token limited to A/AAAA, say).
type srvRefuser struct {
	mu  sync.Mutex
	set []libdns.Record
}

func (p *srvRefuser) SetRecords(_ context.Context, _ string, rs []libdns.Record) ([]libdns.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range rs {
		if t := r.RR().Type; t != "A" && t != "AAAA" {
			return nil, fmt.Errorf("record type %s not allowed", t)
		}
	}
	p.set = append(p.set, rs...)
	return rs, nil
}

func (p *srvRefuser) DeleteRecords(_ context.Context, _ string, rs []libdns.Record) ([]libdns.Record, error) {
	return rs, nil
}

// When the address is written but the server records are refused, the
// ddns check says that (not "could not tell the new home address") and the
// updater keeps retrying the records.
func TestDynDNSServerRecordsRefused(t *testing.T) {
	p := &srvRefuser{}
	var b status.Board
	u := NewUpdater(UpdaterOptions{Provider: p, Zone: "club.example.", Name: "club.example", Reporter: &b,
		MinRetry: 10 * time.Millisecond, MaxRetry: 20 * time.Millisecond, Records: Records(Options{Domain: "club.example"})})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs := make(chan []netip.Addr, 1)
	addrs <- []netip.Addr{netip.MustParseAddr("203.0.113.7")}
	done := make(chan struct{})
	go func() { u.Run(ctx, addrs); close(done) }()
	defer func() { cancel(); <-done }()
	for {
		c, _ := b.Report().Get(CheckDDNS)
		if n, _ := strconv.Atoi(c.Detail["failures"]); n >= 2 {
			if c.Level != status.Error || !strings.Contains(c.Message, "points to your home address 203.0.113.7, but") ||
				!strings.Contains(c.Action, "by hand") || !strings.Contains(c.Detail["error"], "server records") {
				t.Fatalf("check %+v", c)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no retried failure; check %+v", c)
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.set) == 0 || p.set[0].RR().Data != "203.0.113.7" {
		t.Fatalf("address not written: %v", p.set)
	}
}
