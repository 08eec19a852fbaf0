package dnsrec

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

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
