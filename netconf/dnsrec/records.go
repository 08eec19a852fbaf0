// Package dnsrec knows the DNS records a club's own domain needs, checks
// them live, and keeps the address records current (dynamic DNS).
//
// The records (see Records):
//
//   - A and AAAA for the domain itself, one per home address.
//   - CNAME records for groups.<domain> (the group-chat service) and
//     upload.<domain> (file sharing) pointing at the domain. We chose CNAMEs
//     over more A/AAAA records so that when the home address changes only
//     the domain's own A/AAAA records need updating (dynamic DNS touches
//     one name), and a person copying records by hand has one address to
//     keep right instead of three.
//   - SRV _xmpp-client._tcp (port 5222), _xmpps-client._tcp (5223, direct
//     TLS, XEP-0368) and, with federation on, _xmpp-server._tcp (5269) for
//     the domain and for groups.<domain> and upload.<domain>: xmppd/s2s
//     serves those services on streams of their own, so another server
//     looks up each name's _xmpp-server record (and dialback connects back
//     to the name that sent a stanza). SRV targets are the domain itself,
//     never a CNAME (RFC 2782).
//
// Check looks each record up through a given DNS server and says, per
// record, whether it is right, missing or wrong (and what was found). Report
// turns the results into status checks with IDs "dns/<name>/<type>", e.g.
// "dns/_xmpp-client._tcp.club.example/SRV", and one Action per problem that
// says exactly what to type at the domain host.
//
// Watch repeats Check on a timer (through SystemResolver on the box) and
// drops the checks of records that are no longer wanted.
//
// Dynamic DNS (Updater) writes the A/AAAA records through a libdns provider
// (github.com/libdns/libdns) whenever the home address changes, retrying
// with back-off; it reports check "ddns". Where the provider takes them
// (ServiceRecords: not Duck DNS) it also writes the CNAME and SRV records
// once, federation's _xmpp-server ones included. NewProvider builds the provider
// from the appliance config's provider name and settings, from a small
// registry (provider.go: one line per DNS host). The "zone" setting names
// the provider's zone when the domain is below it.
package dnsrec

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Options describe the domain and what it serves.
type Options struct {
	// Domain is the XMPP domain, e.g. "club.example".
	Domain string
	// Addrs are the home's public addresses (IPv4 → A, IPv6 → AAAA).
	// Empty: no address records are computed (e.g. not known yet).
	Addrs []netip.Addr
	// Ports of the public services; zero means the standard port.
	C2S, C2STLS, S2S int
	// NoGroups and NoUpload leave out the names of services that do not run.
	NoGroups, NoUpload bool
	// NoS2S leaves out the _xmpp-server records: federation is off
	// (config.Federation.Off), so no other server should find a port here.
	NoS2S bool
	// TTL for the records; zero means 5 minutes (short, because a home
	// address changes).
	TTL time.Duration
}

// Record is one DNS record, in the words a domain host's page uses.
type Record struct {
	Name  string // fully qualified, no trailing dot: "_xmpp-client._tcp.club.example"
	Type  string // "A", "AAAA", "CNAME" or "SRV"
	Value string // as typed into a zone file, no trailing dots: "0 5 5222 club.example"
	TTL   time.Duration
}

// ID is the record's status check ID: "dns/<name>/<type>".
func (r Record) ID() string { return "dns/" + r.Name + "/" + r.Type }

// String is the record as one zone-file line.
func (r Record) String() string {
	return fmt.Sprintf("%s. %d IN %s %s", r.Name, int(r.TTL/time.Second), r.Type, r.Value)
}

// Records computes the exact records the domain needs.
func Records(o Options) []Record {
	d := normName(o.Domain)
	if d == "" {
		return nil
	}
	ttl := o.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	port := func(p, def int) int {
		if p > 0 {
			return p
		}
		return def
	}
	var rs []Record
	for _, a := range o.Addrs {
		a = a.Unmap()
		t := "AAAA"
		if a.Is4() {
			t = "A"
		}
		rs = append(rs, Record{Name: d, Type: t, Value: a.String(), TTL: ttl})
	}
	if !o.NoGroups {
		rs = append(rs, Record{Name: "groups." + d, Type: "CNAME", Value: d, TTL: ttl})
	}
	if !o.NoUpload {
		rs = append(rs, Record{Name: "upload." + d, Type: "CNAME", Value: d, TTL: ttl})
	}
	srv := func(name string, p int) Record {
		return Record{Name: name, Type: "SRV", Value: "0 5 " + strconv.Itoa(p) + " " + d, TTL: ttl}
	}
	rs = append(rs,
		srv("_xmpp-client._tcp."+d, port(o.C2S, 5222)),
		srv("_xmpps-client._tcp."+d, port(o.C2STLS, 5223)),
	)
	if o.NoS2S {
		return rs
	}
	rs = append(rs, srv("_xmpp-server._tcp."+d, port(o.S2S, 5269)))
	if !o.NoGroups {
		rs = append(rs, srv("_xmpp-server._tcp.groups."+d, port(o.S2S, 5269)))
	}
	if !o.NoUpload {
		// Before, only groups.<domain> had one: a server federating with
		// upload.<domain> (file links shared with remote contacts, its
		// dialback back to that name) found no record.
		rs = append(rs, srv("_xmpp-server._tcp.upload."+d, port(o.S2S, 5269)))
	}
	return rs
}

// normName lowercases a DNS name and drops the trailing dot.
func normName(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}
