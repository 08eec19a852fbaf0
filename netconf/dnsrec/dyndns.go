package dnsrec

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libdns/libdns"

	"github.com/hearthchat/hearth/netconf/status"
)

// UpdaterOptions configure dynamic DNS.
type UpdaterOptions struct {
	// Provider writes the records (see NewProvider).
	Provider interface {
		libdns.RecordSetter
		libdns.RecordDeleter
	}
	// Zone at the provider ("club.example."); Name is the domain whose
	// address records follow the home address ("club.example").
	Zone, Name string
	// TTL of the address records; zero means 5 minutes.
	TTL time.Duration
	// Records are the domain's other records (CNAME, SRV: Records without
	// the addresses) to write through the provider too, where it supports
	// them (ServiceRecords): federation needs _xmpp-server records for the
	// domain, groups. and upload., and a club with a DNS host that takes
	// them should not have to type them by hand. Written once, with the
	// first address update (a config change, e.g. federation turned on,
	// makes a new Updater); nil writes none.
	Records []Record
	// Reporter gets check "ddns". May be nil.
	Reporter status.Reporter
	// MinRetry and MaxRetry bound the back-off after a failed update;
	// zero means 30 seconds and 30 minutes.
	MinRetry, MaxRetry time.Duration
}

// Updater keeps the domain's A/AAAA records equal to the home's addresses.
type Updater struct {
	o       UpdaterOptions
	applied []netip.Addr // what the provider holds, as far as we know
	recsSet bool         // o.Records are at the provider
}

// CheckDDNS is the ID of the dynamic DNS status check.
const CheckDDNS = "ddns"

// DDNSTitle is that check's heading for the domain name.
func DDNSTitle(name string) string { return "Address of " + name + " kept current" }

// NewUpdater makes an Updater.
func NewUpdater(o UpdaterOptions) *Updater {
	if o.TTL <= 0 {
		o.TTL = 5 * time.Minute
	}
	if o.MinRetry <= 0 {
		o.MinRetry = 30 * time.Second
	}
	if o.MaxRetry < o.MinRetry {
		o.MaxRetry = max(30*time.Minute, o.MinRetry)
	}
	if !strings.HasSuffix(o.Zone, ".") {
		o.Zone += "."
	}
	o.Name = normName(o.Name)
	return &Updater{o: o}
}

// Update makes the A records of Name exactly the IPv4 addresses in addrs
// and the AAAA records exactly the IPv6 ones. An address family that is
// absent is left alone unless this Updater set it earlier (then the stale
// records are removed: a dead AAAA record makes some apps wait and fail).
func (u *Updater) Update(ctx context.Context, addrs []netip.Addr) error {
	want := canonAddrs(addrs)
	rel := libdns.RelativeName(u.o.Name+".", u.o.Zone)
	var set []libdns.Record
	var del []libdns.Record
	for _, fam := range []struct {
		typ string
		is  func(netip.Addr) bool
	}{{"A", netip.Addr.Is4}, {"AAAA", netip.Addr.Is6}} {
		var n int
		for _, a := range want {
			if fam.is(a) {
				set = append(set, libdns.Address{Name: rel, TTL: u.o.TTL, IP: a})
				n++
			}
		}
		if n == 0 && slices.ContainsFunc(u.applied, fam.is) {
			del = append(del, libdns.RR{Name: rel, Type: fam.typ})
		}
	}
	if len(set) > 0 {
		if _, err := u.o.Provider.SetRecords(ctx, u.o.Zone, set); err != nil {
			return fmt.Errorf("dnsrec: set address of %s in zone %s: %w", u.o.Name, u.o.Zone, err)
		}
	}
	if len(del) > 0 {
		if _, err := u.o.Provider.DeleteRecords(ctx, u.o.Zone, del); err != nil {
			return fmt.Errorf("dnsrec: remove old address records of %s: %w", u.o.Name, err)
		}
	}
	u.applied = want
	if !u.recsSet && len(u.o.Records) > 0 {
		rs := make([]libdns.Record, 0, len(u.o.Records))
		for _, r := range u.o.Records {
			rs = append(rs, u.libdnsRecord(r))
		}
		if _, err := u.o.Provider.SetRecords(ctx, u.o.Zone, rs); err != nil {
			return fmt.Errorf("dnsrec: set the server records of %s in zone %s: %w", u.o.Name, u.o.Zone, err)
		}
		u.recsSet = true
	}
	return nil
}

// libdnsRecord is r as the provider takes it: the name relative to the
// zone, targets fully qualified, and the typed form (libdns.SRV…) where
// libdns knows the type, since some providers switch on it.
func (u *Updater) libdnsRecord(r Record) libdns.Record {
	data := r.Value
	if r.Type == "SRV" || r.Type == "CNAME" {
		data += "."
	}
	rr := libdns.RR{Name: libdns.RelativeName(r.Name+".", u.o.Zone), Type: r.Type, TTL: r.TTL, Data: data}
	if p, err := rr.Parse(); err == nil {
		return p
	}
	return rr
}

// Run applies each address list received on addrs (the newest wins) and
// retries a failed update with exponential back-off until ctx ends. An
// unchanged list costs nothing.
func (u *Updater) Run(ctx context.Context, addrs <-chan []netip.Addr) error {
	var want []netip.Addr
	var have bool // a wanted list is pending
	delay := u.o.MinRetry
	var retry <-chan time.Time
	var failures int
	for {
		select {
		case <-ctx.Done():
			return nil
		case a, ok := <-addrs:
			if !ok {
				addrs = nil
				continue
			}
			want, have = canonAddrs(a), true
			delay = u.o.MinRetry
			retry = nil
		case <-retry:
			retry = nil
		}
		if !have || retry != nil {
			continue
		}
		if len(want) == 0 || (u.applied != nil && slices.Equal(want, u.applied) && (u.recsSet || len(u.o.Records) == 0)) {
			have = false
			continue
		}
		uctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := u.Update(uctx, want)
		cancel()
		if err == nil {
			have, failures = false, 0
			delay = u.o.MinRetry
			u.report(status.Check{ID: CheckDDNS, Title: DDNSTitle(u.o.Name),
				Level:   status.OK,
				Message: fmt.Sprintf("%s points to your home address %s.", u.o.Name, joinAddrs(want)),
				Detail:  map[string]string{"addresses": joinAddrs(want), "zone": u.o.Zone}})
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		failures++
		next := time.Now().Add(delay)
		msg := fmt.Sprintf("Could not tell your DNS host the new home address %s.", joinAddrs(want))
		action := "Check the DNS host settings (provider, key name and key) in the setup pages. The box tries again by itself."
		if slices.Equal(u.applied, want) {
			// The address went through and only the SRV/CNAME records
			// failed: saying "the new home address" would send the person
			// after the wrong thing.
			msg = fmt.Sprintf("%s points to your home address %s, but your DNS host did not take the records that tell chat apps and other servers where to connect.", u.o.Name, joinAddrs(want))
			action = "Add the missing records listed below at your DNS host by hand, or check that the DNS host settings allow changing them. The box tries again by itself."
		}
		u.report(status.Check{ID: CheckDDNS, Title: DDNSTitle(u.o.Name),
			Level:   status.Error,
			Message: msg,
			Action:  action,
			Detail: map[string]string{"error": err.Error(), "retry_at": next.UTC().Format(time.RFC3339),
				"failures": strconv.Itoa(failures)}})
		retry = time.After(delay)
		delay = min(delay*2, u.o.MaxRetry)
	}
}

func (u *Updater) report(c status.Check) {
	if u.o.Reporter != nil {
		u.o.Reporter.Set(c)
	}
}

func canonAddrs(in []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(in))
	for _, a := range in {
		if a.IsValid() {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, " and ")
}
