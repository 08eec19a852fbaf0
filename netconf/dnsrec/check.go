package dnsrec

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/hearthchat/hearth/netconf/status"
)

// State is how a record turned out.
type State string

const (
	Right   State = "right"
	Missing State = "missing"
	Wrong   State = "wrong"
	Unknown State = "unknown" // the lookup itself failed
)

// Result is what Check found for one record.
type Result struct {
	Record Record
	State  State
	// Found are the values the DNS server gave for the name and type, in
	// zone-file form ("0 5 5222 club.example"; "alias of other.example"
	// when the name is a CNAME where an address was expected).
	Found []string
	// Note explains a Right result that is not literally the record
	// (address records where an alias was suggested).
	Note string
	Err  error
}

// Check looks each record up through the DNS server at resolver
// ("127.0.0.1:53"; a recursive resolver or the domain's authoritative
// server) and says whether it is right, missing or wrong.
func Check(ctx context.Context, resolver string, records []Record) []Result {
	c := &checker{server: resolver, cache: map[string]answer{}}
	out := make([]Result, 0, len(records))
	for _, r := range records {
		out = append(out, c.check(ctx, r, records))
	}
	return out
}

type answer struct {
	values []string // of the asked type, at the asked name
	alias  string   // CNAME target when the name is an alias
	err    error
}

type checker struct {
	server string
	cache  map[string]answer
}

func (c *checker) check(ctx context.Context, r Record, all []Record) Result {
	res := Result{Record: r}
	switch r.Type {
	case "A", "AAAA":
		a := c.lookup(ctx, r.Name, r.Type)
		if a.err != nil {
			res.State, res.Err = Unknown, a.err
			return res
		}
		if a.alias != "" {
			res.State, res.Found = Wrong, []string{"alias of " + a.alias}
			return res
		}
		res.Found = a.values
		res.State = compareSet(a.values, wantValues(all, r.Name, r.Type))
		return res

	case "CNAME":
		a := c.lookup(ctx, r.Name, "CNAME")
		if a.err != nil {
			res.State, res.Err = Unknown, a.err
			return res
		}
		if len(a.values) > 0 {
			res.Found = a.values
			res.State = Wrong
			if normName(a.values[0]) == normName(r.Value) {
				res.State = Right
			}
			return res
		}
		// No alias: plain address records for the same addresses as the
		// target work just as well for clients.
		var found []string
		var want []string
		for _, t := range []string{"A", "AAAA"} {
			aa := c.lookup(ctx, r.Name, t)
			if aa.err != nil {
				res.State, res.Err = Unknown, aa.err
				return res
			}
			found = append(found, aa.values...)
			want = append(want, wantValues(all, normName(r.Value), t)...)
		}
		res.Found = found
		switch {
		case len(found) == 0:
			res.State = Missing
		case len(want) > 0 && compareSet(found, want) == Right:
			res.State = Right
			res.Note = "address records instead of an alias; that works too"
		default:
			res.State = Wrong
		}
		return res

	case "SRV":
		a := c.lookup(ctx, r.Name, "SRV")
		if a.err != nil {
			res.State, res.Err = Unknown, a.err
			return res
		}
		res.Found = a.values
		if len(a.values) == 0 {
			res.State = Missing
			return res
		}
		res.State = Wrong
		wantPort, wantTarget := srvPortTarget(r.Value)
		for _, v := range a.values {
			if p, t := srvPortTarget(v); p == wantPort && t == wantTarget {
				res.State = Right
			}
		}
		return res
	}
	res.State, res.Err = Unknown, fmt.Errorf("dnsrec: unsupported type %s", r.Type)
	return res
}

// wantValues are the values the record list expects at name/type.
func wantValues(all []Record, name, typ string) []string {
	var v []string
	for _, r := range all {
		if normName(r.Name) == normName(name) && r.Type == typ {
			v = append(v, r.Value)
		}
	}
	return v
}

// compareSet: Right when found holds exactly the wanted values (an extra
// stale address sends some visitors to the wrong place, so it is Wrong).
func compareSet(found, want []string) State {
	if len(found) == 0 {
		return Missing
	}
	canon := func(vs []string) []string {
		out := make([]string, 0, len(vs))
		for _, v := range vs {
			if a, err := netip.ParseAddr(v); err == nil {
				v = a.Unmap().String()
			}
			out = append(out, normName(v))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	if slices.Equal(canon(found), canon(want)) {
		return Right
	}
	return Wrong
}

func srvPortTarget(v string) (int, string) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return 0, ""
	}
	p, _ := strconv.Atoi(f[2])
	return p, normName(f[3])
}

// lookup asks the server once per name and type.
func (c *checker) lookup(ctx context.Context, name, typ string) answer {
	key := normName(name) + "/" + typ
	if a, ok := c.cache[key]; ok {
		return a
	}
	a := query(ctx, c.server, name, typ)
	c.cache[key] = a
	return a
}

func query(ctx context.Context, server, name, typ string) answer {
	qt, ok := dns.StringToType[typ]
	if !ok {
		return answer{err: fmt.Errorf("dnsrec: unknown type %q", typ)}
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(normName(name)), qt)
	m.SetEdns0(1232, false)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
	resp, _, err := cl.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		cl.Net = "tcp"
		resp, _, err = cl.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return answer{err: fmt.Errorf("dnsrec: ask %s for %s %s: %w", server, name, typ, err)}
	}
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return answer{err: fmt.Errorf("dnsrec: ask %s for %s %s: server answered %s", server, name, typ, dns.RcodeToString[resp.Rcode])}
	}
	owner := dns.Fqdn(normName(name))
	var a answer
	for _, rr := range resp.Answer {
		if !strings.EqualFold(rr.Header().Name, owner) {
			continue // records further down a CNAME chain
		}
		switch v := rr.(type) {
		case *dns.CNAME:
			if qt == dns.TypeCNAME {
				a.values = append(a.values, normName(v.Target))
			} else {
				a.alias = normName(v.Target)
			}
		case *dns.A:
			if qt == dns.TypeA {
				a.values = append(a.values, v.A.String())
			}
		case *dns.AAAA:
			if qt == dns.TypeAAAA {
				a.values = append(a.values, v.AAAA.String())
			}
		case *dns.SRV:
			if qt == dns.TypeSRV {
				a.values = append(a.values, fmt.Sprintf("%d %d %d %s", v.Priority, v.Weight, v.Port, normName(v.Target)))
			}
		}
	}
	return a
}

// Report puts one status check per result into rep.
func Report(rep status.Reporter, results []Result) {
	for _, r := range results {
		rep.Set(r.Check())
	}
}

// Check is the result as a status check in plain words.
func (r Result) Check() status.Check {
	rec := r.Record
	c := status.Check{
		ID:     rec.ID(),
		Title:  title(rec),
		Detail: map[string]string{"name": rec.Name, "type": rec.Type, "want": rec.Value, "state": string(r.State)},
	}
	if len(r.Found) > 0 {
		c.Detail["found"] = strings.Join(r.Found, ", ")
	}
	switch r.State {
	case Right:
		c.Level = status.OK
		c.Message = fmt.Sprintf("The %s record for %s is set correctly.", rec.Type, rec.Name)
		if r.Note != "" {
			c.Message = fmt.Sprintf("%s has %s.", rec.Name, r.Note)
		}
	case Missing:
		c.Level = missingLevel(rec)
		c.Message = fmt.Sprintf("The %s record for %s is missing.", rec.Type, rec.Name)
		if c.Level == status.Warn {
			c.Message += " Most apps still find the server without it, but some will not."
		}
		c.Action = fmt.Sprintf("At your domain host, add a record: type %s, name %s, value %s.", rec.Type, rec.Name, rec.Value)
	case Wrong:
		c.Level = status.Error
		c.Message = fmt.Sprintf("The %s record for %s has the wrong value: it says %s.", rec.Type, rec.Name, strings.Join(r.Found, ", "))
		c.Action = fmt.Sprintf("At your domain host, change the record: type %s, name %s, to the value %s (it now says %s).", rec.Type, rec.Name, rec.Value, strings.Join(r.Found, ", "))
	default:
		c.Level = status.Warn
		c.Message = fmt.Sprintf("Could not look up the %s record for %s just now.", rec.Type, rec.Name)
		c.Action = "Check that the box is connected to the internet. It checks again by itself."
		if r.Err != nil {
			c.Detail["error"] = r.Err.Error()
		}
	}
	return c
}

// missingLevel: a missing SRV record for a standard port is only a
// warning, since XMPP software falls back to the domain's address on the
// standard port; anything else missing breaks something.
func missingLevel(r Record) status.Level {
	if r.Type != "SRV" {
		return status.Error
	}
	p, _ := srvPortTarget(r.Value)
	switch {
	case strings.HasPrefix(r.Name, "_xmpps-client."):
		return status.Warn // direct TLS is an extra, clients use 5222 without it
	case strings.HasPrefix(r.Name, "_xmpp-client.") && p == 5222,
		strings.HasPrefix(r.Name, "_xmpp-server.") && p == 5269:
		return status.Warn
	}
	return status.Error
}

func title(r Record) string {
	n := r.Name
	switch {
	case r.Type == "A" || r.Type == "AAAA":
		return "Internet address of " + n
	case strings.HasPrefix(n, "groups."):
		return "Name for group chats (" + n + ")"
	case strings.HasPrefix(n, "upload."):
		return "Name for shared files (" + n + ")"
	case strings.HasPrefix(n, "_xmpps-client."):
		return "Where chat apps find the server (secure port)"
	case strings.HasPrefix(n, "_xmpp-client."):
		return "Where chat apps find the server"
	case strings.HasPrefix(n, "_xmpp-server._tcp.groups."):
		return "Where other servers find the group chats"
	case strings.HasPrefix(n, "_xmpp-server._tcp.upload."):
		return "Where other servers find the shared files"
	case strings.HasPrefix(n, "_xmpp-server."):
		return "Where other servers find this one"
	}
	return r.Type + " record for " + n
}

// ErrNoProvider is returned when the config names no DNS provider.
var ErrNoProvider = errors.New("dnsrec: no DNS provider configured")
