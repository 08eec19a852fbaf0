package main

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"log"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// The PEP phase (issue 12, optional part): one member publishes to a PEP
// node of their own; S contacts who see the member's presence and whose
// entity capabilities (XEP-0115) say NODE+notify get each item as an
// event (XEP-0163). Measured: time from the publish to the last
// contact's notification, and server CPU per notification. This is the
// path every OMEMO device-list and avatar update takes.

const (
	nsPubSub      = "http://jabber.org/protocol/pubsub"
	nsPubSubEvent = nsPubSub + "#event"
	nsCaps        = "http://jabber.org/protocol/caps"
	nsDiscoInfo   = "http://jabber.org/protocol/disco#info"
	pepNode       = "urn:xmpp:hearth-bench:0"
	capsNode      = "https://hearth.example/bench"
)

// pepFeatures are what the subscribers' client says it supports.
var pepFeatures = []string{nsCaps, nsDiscoInfo, pepNode + "+notify"}

const pepIdentity = "client/bot//hearth-bench"

// capsVer is the XEP-0115 §5.1 verification string for one identity
// ("category/type/lang/name") and features, SHA-1, base64.
func capsVer(identity string, features []string) string {
	f := slices.Clone(features)
	slices.Sort(f)
	s := identity + "<" + strings.Join(f, "<") + "<"
	h := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(h[:])
}

// discoAnswer is a subscriber's answer to the server's disco#info query
// for its caps node (the server learns +notify from it).
func discoAnswer(q *stream.Element) string {
	var b strings.Builder
	b.WriteString("<iq type='result' id='" + xmlEscape(q.Get("id")) + "' to='" + xmlEscape(q.Get("from")) + "'>")
	node := ""
	if c := q.FirstChild(); c != nil && c.Get("node") != "" {
		node = " node='" + xmlEscape(c.Get("node")) + "'"
	}
	b.WriteString("<query xmlns='" + nsDiscoInfo + "'" + node + "><identity category='client' type='bot' name='hearth-bench'/>")
	for _, f := range pepFeatures {
		b.WriteString("<feature var='" + f + "'/>")
	}
	b.WriteString("</query></iq>")
	return b.String()
}

// pepOptions are the phase's sizes.
type pepOptions struct {
	subscribers, items int
}

type pepResult struct {
	subscribers int
	items       int
	delivered   int64 // notifications counted
	complete    int   // items every subscriber got
	p50, p99    time.Duration
	maxLat      time.Duration
	cpuNS       int64
	window      time.Duration
	discoAsked  int64 // disco#info queries the server sent the subscribers
}

// pepItemID reads the item id of a pubsub event for pepNode ("TAG-K"),
// returning tag and K.
func pepItemID(el *stream.Element) (tag string, k int, ok bool) {
	ev := el.Child(nsPubSubEvent, "event")
	if ev == nil {
		return "", 0, false
	}
	items := ev.Child(nsPubSubEvent, "items")
	if items == nil || items.Get("node") != pepNode {
		return "", 0, false
	}
	it := items.Child(nsPubSubEvent, "item")
	if it == nil {
		return "", 0, false
	}
	tag, num, found := strings.Cut(it.Get("id"), "-")
	k, err := strconv.Atoi(num)
	if !found || err != nil || k < 0 {
		return "", 0, false
	}
	return tag, k, true
}

// pepPhase: accounts first (the publisher) and the next S (contacts).
func pepPhase(o *options, name string, pid int, l *loader, first int, r *result) error {
	S, K := o.pep.subscribers, o.pep.items
	ss, _, err := l.openSessions(first, first+S+1, 8, false, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("PEP sessions: %w", err)
	}
	defer closeAll(ss)
	pub, subs := ss[0], ss[1:]
	pubBare := strings.SplitN(pub.c.JID(), "/", 2)[0]

	// Presence subscriptions both ways (Prosody learns a contact's caps
	// from the presence the contact sends the publisher, so the publisher
	// must see the contact's presence too). Each side approves a request
	// when it arrives (pre-approval is optional in RFC 6121).
	// Each session asks for its roster first: a server delivers a
	// subscription request only to resources that have (RFC 6121 §3.1.3;
	// Prosody holds it back otherwise).
	for _, s := range ss {
		if _, err := s.iq("get", "", "<query xmlns='jabber:iq:roster'/>", 10*time.Second); err != nil {
			return fmt.Errorf("PEP: roster: %w", err)
		}
	}
	var approved sync.WaitGroup
	for _, s := range ss {
		n := 1 // a contact waits for the publisher's approval
		if s == pub {
			n = S
		}
		approved.Add(n)
		var left atomic.Int64
		left.Store(int64(n))
		c := s.c
		f := func(b []byte) {
			el, err := stream.ParseElement(b)
			if err != nil {
				return
			}
			switch el.Get("type") {
			case "subscribe":
				from := strings.SplitN(el.Get("from"), "/", 2)[0]
				c.Send([]byte("<presence type='subscribed' to='" + xmlEscape(from) + "'/>"))
			case "subscribed":
				if left.Add(-1) >= 0 {
					approved.Done()
				}
			}
		}
		s.onPres.Store(&f)
	}
	for _, s := range subs {
		s.c.Send([]byte("<presence type='subscribe' to='" + pubBare + "'/>"))
		pub.c.Send([]byte("<presence type='subscribe' to='" + strings.SplitN(s.c.JID(), "/", 2)[0] + "'/>"))
	}
	if !waitGroup(&approved, 30*time.Second) {
		return fmt.Errorf("PEP: presence subscriptions between %s and its contacts not all approved within 30 s", pubBare)
	}
	for _, s := range ss {
		s.onPres.Store(nil)
	}
	// Caps with NODE+notify; answer the server's disco#info queries.
	ver := capsVer(pepIdentity, pepFeatures)
	var asked atomic.Int64
	for _, s := range subs {
		c := s.c
		f := func(b []byte) {
			el, err := stream.ParseElement(b)
			if err != nil || el.Get("type") != "get" {
				return
			}
			if q := el.FirstChild(); q != nil && q.Space == nsDiscoInfo {
				asked.Add(1)
				c.Send([]byte(discoAnswer(el)))
			}
		}
		s.onIQ.Store(&f)
		c.Send([]byte("<presence><c xmlns='" + nsCaps + "' hash='sha-1' node='" + capsNode + "' ver='" + ver + "'/></presence>"))
	}
	defer func() {
		for _, s := range subs {
			s.onIQ.Store(nil)
			s.onMsg.Store(nil)
		}
	}()

	// Notifications, by item number: receipts and the time the last came.
	var mu sync.Mutex
	var tag string
	got := map[int]int{}
	sentAt := map[int]time.Time{}
	var lat []int64
	var delivered atomic.Int64
	allGot := make(chan int, K+1)
	for _, s := range subs {
		f := func(b []byte) {
			now := time.Now()
			el, err := stream.ParseElement(b)
			if err != nil || !strings.HasPrefix(el.Get("from"), pubBare) {
				return
			}
			tg, k, ok := pepItemID(el)
			mu.Lock()
			defer mu.Unlock()
			if !ok || tg != tag {
				return
			}
			delivered.Add(1)
			got[k]++
			if got[k] == S {
				if t, ok := sentAt[k]; ok {
					lat = append(lat, now.Sub(t).Nanoseconds())
				}
				select {
				case allGot <- k:
				default:
				}
			}
		}
		s.onMsg.Store(&f)
	}
	publish := func(k int) error {
		mu.Lock()
		sentAt[k] = time.Now()
		id := tag + "-" + strconv.Itoa(k)
		mu.Unlock()
		_, err := pub.iq("set", pubBare, "<pubsub xmlns='"+nsPubSub+"'><publish node='"+pepNode+"'><item id='"+id+
			"'><entry xmlns='"+pepNode+"'>"+filler+"</entry></item></publish></pubsub>", 10*time.Second)
		return err
	}
	waitAll := func(limit time.Duration) bool {
		select {
		case <-allGot:
			return true
		case <-time.After(limit):
			return false
		}
	}
	// Warm-up: until every contact gets an item the servers may still be
	// learning the caps (their disco#info queries are answered above).
	// Up to 10 tries a second apart.
	warm := false
	for try := 0; try < 10 && !warm; try++ {
		mu.Lock()
		tag, got = "w"+strconv.Itoa(try), map[int]int{}
		mu.Unlock()
		if err := publish(0); err != nil {
			return fmt.Errorf("PEP publish: %w", err)
		}
		warm = waitAll(time.Second)
	}
	if !warm {
		mu.Lock()
		n := got[0]
		mu.Unlock()
		return fmt.Errorf("PEP: after 10 publishes only %d of %d contacts got the item (server asked %d caps queries)", n, S, asked.Load())
	}
	mu.Lock()
	tag, lat, got = "m", nil, map[int]int{}
	delivered.Store(0)
	mu.Unlock()
	for len(allGot) > 0 {
		<-allGot // late completions of the warm-up
	}
	x := &r.pep
	x.subscribers, x.items = S, K
	s0 := measure(pid)
	t0 := time.Now()
	for k := 0; k < K; k++ {
		if err := publish(k); err != nil {
			return fmt.Errorf("PEP publish: %w", err)
		}
		if !waitAll(5 * time.Second) {
			break
		}
	}
	x.window = time.Since(t0)
	x.cpuNS = measure(pid).cpuNS - s0.cpuNS
	x.delivered = delivered.Load()
	x.discoAsked = asked.Load()
	mu.Lock()
	sorted := slices.Clone(lat)
	mu.Unlock()
	slices.Sort(sorted)
	x.complete = len(sorted)
	if len(sorted) > 0 {
		x.p50, x.p99, x.maxLat = percentile(sorted, 0.5), percentile(sorted, 0.99), time.Duration(sorted[len(sorted)-1])
	}
	log.Printf("%s: PEP: %d items to %d contacts, %d complete, p50 %v p99 %v, %.1f µs server CPU per notification",
		name, K, S, x.complete, x.p50.Round(time.Microsecond), x.p99.Round(time.Microsecond), float64(x.cpuNS)/1e3/float64(max(x.delivered, 1)))
	if x.complete != K {
		r.notes = append(r.notes, fmt.Sprintf("PEP: %d of %d items reached all %d contacts", x.complete, K, S))
	}
	return nil
}

// waitGroup waits for wg up to limit.
func waitGroup(wg *sync.WaitGroup, limit time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(limit):
		return false
	}
}
