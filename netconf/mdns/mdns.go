// Package mdns makes the box answer to http://hearth.local on the home
// network: the host name's A and AAAA records (multicast DNS, RFC 6762)
// and a `_http._tcp` service for the setup pages (DNS-SD, RFC 6763, TXT
// "path=/"), on the LAN interfaces only.
//
// It is a small responder of our own on top of github.com/miekg/dns (the
// wire format) and golang.org/x/net/ipv4+ipv6 (per-interface sockets).
// The libraries considered first fall short of what the box needs:
//
//   - github.com/grandcat/zeroconf never answers A/AAAA queries for the
//     host name (its issues #83 and #42), so `getent hosts hearth.local`
//     from a fresh resolver fails.
//   - github.com/brutella/dnssd v1.2.14 answers them and renames a second
//     box, but tried against avahi in this package's test network, the
//     host name kept resolving after its responder had stopped: its
//     goodbye withdraws only the PTR record, so peers keep the A/AAAA
//     records for their full two minutes. Reading its source also showed
//     that it answers service queries on every interface (Ifaces limits
//     only the address records) and that its reader goroutines can spin
//     on a closed socket (context ended by deadline) or block forever on
//     an unread channel. Fixing that would have meant forking it.
//
// What the responder does: probe for the name (three probes 250 ms apart,
// simultaneous-probe tie-break of RFC 6762 §8.2), pick hearth-2, hearth-3,
// … on a conflict (also one found later, while running), announce twice,
// answer queries from the interface they came in on with that interface's
// addresses (known-answer suppression, NSEC for types we lack, QU →
// unicast, each record multicast at most once a second per interface
// and IP family — RFC 6762 §6, rate.go), answer one-shot "legacy" queries from any source port other
// than 5353 with a plain DNS reply (same ID, the question repeated, TTL
// ≤ 10 s) so a resolver without an mDNS daemon works too, re-announce when
// the interfaces' addresses change (checked every PollInterval; an
// interface without carrier counts as gone, so a cable plugged back in
// means probing again), and send goodbye packets (TTL 0 for every record)
// when Run's context ends or another host wins the name.
//
// Status check (ID "mdns", see netconf/status):
//
//   - Pending: checking that the name is free.
//   - OK: "Phones and computers at home can open http://hearth.local".
//   - Warn: another device already uses the name; this box took
//     hearth-2.local (the message says so, and what to do).
//   - Error: no LAN interface, or the mDNS port could not be opened; Run
//     keeps retrying every PollInterval.
//   - Off: Run has ended (goodbye sent).
//
// Detail keys: "name" (hearth.local or the name won), "url", "wanted" (the
// name asked for), "interfaces", "addresses", "error".
package mdns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/hearthchat/hearth/netconf/internal/wait"
	"github.com/hearthchat/hearth/netconf/status"
)

// CheckID is the status check this package reports.
const CheckID = "mdns"

// Title is the check's heading on the status page.
const Title = "Name on the home network"

// Options configure the responder.
type Options struct {
	// Hostname is the label to answer to, without ".local"; default
	// "hearth" (config.Net.Hostname).
	Hostname string
	// HTTPPort is the setup pages' port announced in `_http._tcp`;
	// default 80.
	HTTPPort int
	// Interfaces to answer on. Empty: every interface that is up with
	// carrier, can multicast, is not loopback and has an address.
	Interfaces []string
	Reporter   status.Reporter
	// PollInterval is how often interface addresses are checked for
	// changes (and retries after an error are made); default 30 s.
	PollInterval time.Duration
}

// Responder answers for the box's name. Create it with New, run it with
// Run.
type Responder struct {
	opts Options

	mu   sync.Mutex
	name string // the name won, "hearth-2.local"; "" until then
}

// maxNames bounds the search for a free name: a network with 100 boxes
// all called hearth is misconfigured, not busy.
const maxNames = 100

// New checks opts and fills in defaults.
func New(opts Options) (*Responder, error) {
	if opts.Hostname == "" {
		opts.Hostname = "hearth"
	}
	opts.Hostname = strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(opts.Hostname, "."), ".local"))
	if !validLabel(opts.Hostname) {
		return nil, fmt.Errorf("mdns: host name %q: use letters, digits and hyphens only", opts.Hostname)
	}
	if opts.HTTPPort == 0 {
		opts.HTTPPort = 80
	}
	if opts.HTTPPort < 1 || opts.HTTPPort > 65535 {
		return nil, fmt.Errorf("mdns: HTTP port %d out of range", opts.HTTPPort)
	}
	if opts.Reporter == nil {
		return nil, errors.New("mdns: Reporter is required")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 30 * time.Second
	}
	return &Responder{opts: opts}, nil
}

// Name is the name the box won, like "hearth.local" or "hearth-2.local";
// empty while it is still being checked or when Run is not running.
func (r *Responder) Name() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.name
}

func (r *Responder) setName(n string) {
	r.mu.Lock()
	r.name = n
	r.mu.Unlock()
}

// Run answers until ctx ends, then says goodbye and returns nil. Errors
// (no LAN, port taken) are reported and retried, not returned.
func (r *Responder) Run(ctx context.Context) error {
	r.pending()
	defer func() {
		r.setName("")
		r.opts.Reporter.Set(status.Check{ID: CheckID, Title: Title, Level: status.Off,
			Message: fmt.Sprintf("This box has stopped answering to %s.local.", r.opts.Hostname)})
	}()
	for {
		err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		r.setName("")
		r.failed(err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.opts.PollInterval):
		}
	}
}

// debugf logs protocol events; the tests' helper process sets it.
var debugf = func(format string, args ...any) {}

var errNoLAN = errors.New("mdns: no LAN interface")

// session is one life of the sockets: probe, announce, answer, and say
// goodbye when ctx ends. It returns an error when it cannot go on.
func (r *Responder) session(ctx context.Context) error {
	ifs, err := lanInterfaces(r.opts.Interfaces)
	if err != nil {
		return err
	}
	if len(ifs) == 0 {
		return errNoLAN
	}
	c, err := listen()
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.join(ifs); err != nil {
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	pkts := make(chan packet, 64)
	c.read(rctx, pkts)

	s := &session{r: r, c: c, pkts: pkts, ifs: ifs, sent: sentLog{}}
	return s.run(ctx)
}

// session holds the state of one run; only its goroutine touches it.
type session struct {
	r    *Responder
	c    *conn
	pkts chan packet
	ifs  []lanIface
	n    int  // which candidate name: 1 → hearth, 2 → hearth-2, …
	z    zone // the name in use (after probing)
	sent sentLog
}

func (s *session) run(ctx context.Context) error {
	s.n = 1
	for {
		won, err := s.claim(ctx)
		if err != nil || !won {
			return err
		}
		conflict, err := s.serve(ctx)
		if err != nil || !conflict {
			return err
		}
		// Someone else answers for our name now (two boxes that were not
		// on the same link when they probed, RFC 6762 §9): both go back
		// to probing the same name; the tie-break lets one keep it and
		// the other moves on to the next.
		s.r.setName("")
		s.r.pending()
	}
}

// claim probes for names until one is free. won is false when ctx ended.
func (s *session) claim(ctx context.Context) (won bool, err error) {
	lost := 0
	for ; s.n <= maxNames; s.n++ {
		z := newZone(candidate(s.r.opts.Hostname, s.n), s.r.opts.HTTPPort)
		res, err := s.probe(ctx, z)
		if err != nil {
			return false, err
		}
		switch res {
		case probeFree:
			s.z = z
			s.r.setName(strings.TrimSuffix(z.host, "."))
			s.r.claimed(z, s.ifs)
			return true, nil
		case probeLostTie:
			// RFC 6762 §8.2: the loser waits a second and probes the same
			// name again; the winner has announced by then.
			if lost++; lost > 10 {
				continue
			}
			s.n--
			if !wait.Sleep(ctx, time.Second) {
				return false, nil
			}
		case probeTaken:
			lost = 0
		}
	}
	return false, fmt.Errorf("mdns: %d names from %s.local on are all taken", maxNames, s.r.opts.Hostname)
}

type probeResult int

const (
	probeFree probeResult = iota
	probeTaken
	probeLostTie
)

// probe asks three times, 250 ms apart, whether anyone uses z's names.
func (s *session) probe(ctx context.Context, z zone) (probeResult, error) {
	t := time.NewTimer(time.Duration(jitter(0, 250)) * time.Millisecond)
	defer t.Stop()
	sent := 0
	probes := map[int]*dns.Msg{}
	for _, ifc := range s.ifs {
		probes[ifc.Index] = z.probe(ifc)
	}
	for {
		select {
		case <-ctx.Done():
			return probeFree, ctx.Err()
		case p := <-s.pkts:
			ifc, ok := findIface(s.ifs, p.ifindex)
			if !ok || ours(s.ifs, p.src.Addr()) {
				continue
			}
			if p.msg.Response {
				if z.conflictIn(p.msg, func(a netip.Addr) bool { return ours(s.ifs, a) }) {
					debugf("probe %s: taken, says %v:\n%v", z.host, p.src, p.msg)
					return probeTaken, nil
				}
				continue
			}
			if sent > 0 && z.tieBreak(p.msg, probes[ifc.Index]) < 0 {
				debugf("probe %s: lost tie-break to %v:\n%v", z.host, p.src, p.msg)
				return probeLostTie, nil
			}
		case <-t.C:
			if sent == 3 {
				return probeFree, nil
			}
			for _, ifc := range s.ifs {
				s.c.multicast(probes[ifc.Index], ifc)
			}
			sent++
			t.Reset(250 * time.Millisecond)
		}
	}
}

// serve announces z and answers queries until ctx ends (goodbye sent,
// conflict false) or another host claims our name (conflict true).
func (s *session) serve(ctx context.Context) (conflict bool, err error) {
	z := s.z
	poll := time.NewTicker(s.r.opts.PollInterval)
	defer poll.Stop()
	// Announce twice, a second apart (RFC 6762 §8.3).
	announce := time.NewTimer(0)
	defer announce.Stop()
	announced := 0
	for {
		select {
		case <-ctx.Done():
			s.goodbye(z)
			return false, nil
		case <-announce.C:
			// An announcement keeps the second's gap too (RFC 6762 §6
			// exempts only probe defence): when an answer to a query
			// went out less than a second ago, it waits. And it counts:
			// a query right after it is answered from the peers' caches.
			now := time.Now()
			if due := s.announceDue(z, now); due.After(now) {
				announce.Reset(due.Sub(now))
				continue
			}
			for _, ifc := range s.ifs {
				m := response(z.all(ifc), nil)
				s.c.multicast(m, ifc)
				s.sent.mark(m, ifc, both, now)
			}
			announced++
			debugf("announced %s (%d of 2)", z.host, announced)
			if announced < 2 {
				announce.Reset(time.Second)
			}
		case <-poll.C:
			ifs, err := lanInterfaces(s.r.opts.Interfaces)
			if err != nil || sameIfaces(ifs, s.ifs) {
				continue
			}
			if len(ifs) == 0 {
				s.goodbye(z)
				return false, errNoLAN
			}
			if err := s.c.join(ifs); err != nil {
				s.goodbye(z)
				return false, err
			}
			s.withdrawGone(z, ifs)
			s.ifs = ifs
			s.r.claimed(z, ifs)
			announced = 0
			announce.Reset(0)
		case p := <-s.pkts:
			ifc, ok := findIface(s.ifs, p.ifindex)
			if !ok || ours(s.ifs, p.src.Addr()) {
				continue
			}
			if p.msg.Response {
				if z.conflictIn(p.msg, func(a netip.Addr) bool { return ours(s.ifs, a) }) {
					debugf("serve %s: conflict from %v:\n%v", z.host, p.src, p.msg)
					// Withdraw our records so peers keep only the other's.
					s.goodbye(z)
					return true, nil
				}
				continue
			}
			s.answer(p, ifc, z)
		}
	}
}

// announceDue is when z's records may next be announced on every
// interface: a second after the last multicast of any of them.
func (s *session) announceDue(z zone, now time.Time) time.Time {
	due := now
	for _, ifc := range s.ifs {
		for _, rr := range z.all(ifc) {
			if d := s.sent.due(rr, ifc, both, now, multicastGap); d.After(due) {
				due = d
			}
		}
	}
	return due
}

// reply is what one query gets: a unicast message to the asker and a
// multicast one to the group, each possibly nil.
type reply struct {
	uni   *dns.Msg
	multi *dns.Msg
	fam   family        // the family multi goes out over: the query's
	delay time.Duration // before multi is sent
}

// answer replies to one query.
func (s *session) answer(p packet, ifc lanIface, z zone) {
	r := s.plan(p, ifc, z, time.Now())
	if r.uni != nil {
		s.c.unicast(r.uni, p.src, ifc.Index)
	}
	if r.multi == nil {
		return
	}
	if r.delay > 0 {
		c := s.c
		time.AfterFunc(r.delay, func() { c.multicastOver(r.multi, ifc, r.fam) })
	} else {
		s.c.multicastOver(r.multi, ifc, r.fam)
	}
}

// plan decides the reply to query p, received on ifc at now, and records
// the multicast part in s.sent as sent at the time it will go out.
func (s *session) plan(p packet, ifc lanIface, z zone, now time.Time) reply {
	q := p.msg
	if q.Opcode != dns.OpcodeQuery || q.Rcode != 0 {
		return reply{}
	}
	legacy := p.src.Port() != mdnsPort
	if legacy || !p.multicast {
		// Direct and one-shot queries are only for neighbours.
		if !ifc.onLink(p.src.Addr()) {
			return reply{}
		}
	}
	if legacy {
		// A one-shot resolver gets a unicast reply, which no one else
		// hears: the multicast rate limit does not apply (RFC 6762 §6.7).
		return reply{uni: z.legacyReply(q, ifc)}
	}
	f := only4
	if p.src.Addr().Is6() {
		f = only6
	}
	// A query carrying proposed records is a probe (RFC 6762 §8.1).
	probe := len(q.Ns) > 0
	var multiAns, multiExtra, uniAns, uniExtra []dns.RR
	delay := time.Duration(0)
	for _, qu := range q.Question {
		if !inClass(qu) {
			continue
		}
		ans, extra := z.answer(qu, ifc)
		ans = suppress(ans, q.Answer)
		if len(ans) == 0 {
			continue
		}
		if qu.Qclass&unicastQ != 0 || !p.multicast {
			uniAns, uniExtra = append(uniAns, ans...), append(uniExtra, extra...)
			continue
		}
		if probe {
			// Defending our name: late is better than never, so wait out
			// the shorter gap instead of dropping the answer.
			for _, rr := range ans {
				delay = max(delay, s.sent.due(rr, ifc, f, now, probeGap).Sub(now))
			}
		} else if ans = s.sent.fresh(ans, ifc, f, now); len(ans) == 0 {
			continue
		}
		multiAns, multiExtra = append(multiAns, ans...), append(multiExtra, extra...)
		if shared(ans[0]) {
			// Shared answers wait 20–120 ms so that the many boxes that
			// may hold one do not all answer at once (RFC 6762 §6).
			delay = max(delay, time.Duration(jitter(20, 120))*time.Millisecond)
		}
	}
	var r reply
	if len(uniAns) > 0 {
		r.uni = response(uniAns, dedup(uniExtra, uniAns))
	}
	if len(multiAns) > 0 {
		// Additional records count as multicast too: leave out those
		// sent within the gap (they only save the asker a round trip).
		extra := dedup(multiExtra, multiAns)
		if !probe {
			extra = s.sent.fresh(extra, ifc, f, now)
		}
		r.multi, r.fam, r.delay = response(multiAns, extra), f, delay
		s.sent.mark(r.multi, ifc, f, now.Add(delay))
	}
	return r
}

// withdrawGone says goodbye for the addresses an interface lost (DHCP gave
// a new one), before the new ones are announced. The cache-flush bit of
// the announcement alone is not enough: a peer keeps an old record it
// refreshed less than a second earlier (RFC 6762 §10.2), and then hands
// out the dead address for two minutes.
func (s *session) withdrawGone(z zone, now []lanIface) {
	for _, old := range s.ifs {
		cur, ok := findIface(now, old.Index)
		if !ok {
			continue // the interface is gone; nothing can be sent on it
		}
		gone := old
		gone.Addrs = slices.DeleteFunc(slices.Clone(old.Addrs), func(a netip.Addr) bool { return slices.Contains(cur.Addrs, a) })
		if len(gone.Addrs) == 0 {
			continue
		}
		// TTL 0 and no cache-flush bit: it must remove these records only.
		m := new(dns.Msg)
		m.Response, m.Authoritative = true, true
		for _, rr := range z.hostRecords(gone) {
			rr.Header().Ttl = 0
			m.Answer = append(m.Answer, rr)
		}
		s.c.multicast(m, cur)
	}
}

// goodbye withdraws every record on every interface. It is sent twice, a
// little apart, since one lost packet would leave the name cached.
func (s *session) goodbye(z zone) {
	for i := range 2 {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		for _, ifc := range s.ifs {
			s.c.multicast(z.goodbye(ifc), ifc)
		}
	}
}
