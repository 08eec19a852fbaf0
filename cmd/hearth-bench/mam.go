package main

import (
	"fmt"
	"log"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// The account archive phase (issue 13): one member sends another real
// messages, as fast as the server takes them with a bounded number in
// flight, until the receiver's archive (XEP-0313) holds mamOptions.fill of
// them or fillWindow has passed; then the receiver pages its own archive
// 50 messages at a time: the newest page (what a client asks on login),
// the newest page with one contact (opening a chat), and the oldest page.
// Only real messages fill it: an import path would skip the per-message
// cost the figure is meant to include.

type mamOptions struct {
	fill       int           // messages to send into the archive
	fillWindow time.Duration // bound on the fill
	page       int           // RSM max of each query
	queries    int           // times each query is asked (median reported)
}

type mamResult struct {
	sent, delivered int64
	fillTime        time.Duration
	fillWrite       int64 // write_bytes over the fill
	// count is the archive's size as the server reports it (RSM <count/>
	// of a max=0 query); -1 when it gave none.
	count int64
	// medians over opts.queries, and how many results the last one got
	newest, with, oldest    time.Duration
	nNewest, nWith, nOldest int
	rssAfter, anonAfter     int64 // KiB, after the fill and the queries
	queries                 int
	hitWindow               bool
}

// mamFillInflight bounds the messages in flight during the fill: enough
// to keep a server's core busy, few enough that none queues for seconds.
const mamFillInflight = 256

func mamPhase(o *options, name string, pid int, l *loader, first int, r *result) error {
	m := o.mam
	ss, _, err := l.openSessions(first, first+2, 2, false, time.Minute)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	defer closeAll(ss)
	snd, rcv := ss[0], ss[1]
	rcvBare := strings.SplitN(rcv.c.JID(), "/", 2)[0]
	sndBare := strings.SplitN(snd.c.JID(), "/", 2)[0]
	x := mamResult{count: -1, queries: m.queries}

	// Fill: receiver counts our messages; the sender keeps at most
	// mamFillInflight undelivered.
	var got atomic.Int64
	var bounced atomic.Int64
	wake := make(chan struct{}, 1)
	fr := func(b []byte) {
		if _, ok := msgID(b); ok && !strings.Contains(string(b), nsMAM) {
			got.Add(1)
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
	fs := func(b []byte) {
		if isError(b) {
			bounced.Add(1)
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
	rcv.onMsg.Store(&fr)
	snd.onMsg.Store(&fs)
	s0 := measure(pid)
	t0 := time.Now()
	deadline := t0.Add(m.fillWindow)
	var buf []byte
	var sent int64
	for sent < int64(m.fill) && time.Now().Before(deadline) {
		if sent-got.Load()-bounced.Load() >= mamFillInflight {
			select {
			case <-wake:
			case <-time.After(time.Until(deadline)):
			}
			continue
		}
		buf = buf[:0]
		for k := 0; k < 32 && sent < int64(m.fill); k++ {
			buf = appendMsg(buf, rcvBare, sent)
			sent++
		}
		if err := snd.c.Send(buf); err != nil {
			return fmt.Errorf("fill: send: %w", err)
		}
	}
	x.hitWindow = sent < int64(m.fill)
	for end := time.Now().Add(drainLimit); got.Load()+bounced.Load() < sent && time.Now().Before(end); {
		select {
		case <-wake:
		case <-time.After(10 * time.Millisecond):
		}
	}
	x.fillTime = time.Since(t0)
	s1 := measure(pid)
	rcv.onMsg.Store(nil)
	snd.onMsg.Store(nil)
	x.sent, x.delivered, x.fillWrite = sent, got.Load(), s1.writeBytes-s0.writeBytes
	if b := bounced.Load(); b > 0 {
		r.notes = append(r.notes, fmt.Sprintf("account archive: %d of the fill's messages bounced", b))
	}
	log.Printf("%s: archive fill: %d sent, %d delivered in %v", name, x.sent, x.delivered, x.fillTime.Round(time.Millisecond))

	// The archive's size as the server counts it.
	if el, err := rcv.iq("set", "", fmt.Sprintf("<query xmlns='%s' queryid='%s'><set xmlns='%s'><max>0</max></set></query>",
		nsMAM, nextID("cnt"), nsRSM), 60*time.Second); err == nil {
		if n, ok := rsmCount(el); ok {
			x.count = n
		}
	} else {
		r.notes = append(r.notes, "account archive: count query: "+err.Error())
	}

	withForm := fmt.Sprintf("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>%s</value></field>"+
		"<field var='with'><value>%s</value></field></x>", nsMAM, xmlEscape(sndBare))
	kinds := []struct {
		form, rsm string
		med       *time.Duration
		n         *int
	}{
		{"", "<before/>", &x.newest, &x.nNewest},
		{withForm, "<before/>", &x.with, &x.nWith},
		{"", "", &x.oldest, &x.nOldest},
	}
	for _, k := range kinds {
		var ds []time.Duration
		for i := 0; i < m.queries; i++ {
			d, n, err := mamPage(rcv, k.form, k.rsm, m.page, 60*time.Second)
			if err != nil {
				return fmt.Errorf("archive page: %w", err)
			}
			ds = append(ds, d)
			*k.n = n
		}
		*k.med = median(ds)
	}
	mm := measure(pid)
	x.rssAfter, x.anonAfter = mm.rssKB, mm.rssAnonKB
	want := min(int(x.delivered), m.page)
	if x.nNewest != want || x.nWith != want || x.nOldest != want {
		r.notes = append(r.notes, fmt.Sprintf("account archive: pages got %d/%d/%d messages (newest/with/oldest), want %d",
			x.nNewest, x.nWith, x.nOldest, want))
	}
	if x.hitWindow {
		r.notes = append(r.notes, fmt.Sprintf("account archive: the fill stopped at the %v bound after %d of %d messages", m.fillWindow, x.sent, m.fill))
	}
	log.Printf("%s: archive of %d (server counts %d): newest %d in %v, with one contact %v, oldest %v", name, x.delivered, x.count,
		x.nNewest, x.newest.Round(time.Microsecond), x.with.Round(time.Microsecond), x.oldest.Round(time.Microsecond))
	r.mam = x
	return nil
}

// mamPage asks s's own archive for one page and returns the time until
// the iq result (which follows the last forwarded message) and how many
// messages came.
func mamPage(s *session, form, rsm string, max int, limit time.Duration) (time.Duration, int, error) {
	qid := nextID("mq")
	var n atomic.Int64
	f := func(b []byte) {
		if strings.Contains(string(b), "queryid='"+qid+"'") || strings.Contains(string(b), `queryid="`+qid+`"`) {
			n.Add(1)
		}
	}
	s.onMsg.Store(&f)
	defer s.onMsg.Store(nil)
	q := fmt.Sprintf("<query xmlns='%s' queryid='%s'>%s<set xmlns='%s'><max>%d</max>%s</set></query>", nsMAM, qid, form, nsRSM, max, rsm)
	t := time.Now()
	if _, err := s.iq("set", "", q, limit); err != nil {
		return 0, 0, err
	}
	return time.Since(t), int(n.Load()), nil
}

// rsmCount finds <count/> in the <set/> of a MAM <fin/>.
func rsmCount(el *stream.Element) (int64, bool) {
	var walk func(e *stream.Element) (int64, bool)
	walk = func(e *stream.Element) (int64, bool) {
		for _, c := range e.Children() {
			if c.Local == "count" && c.Space == nsRSM {
				n, err := strconv.ParseInt(strings.TrimSpace(c.Text()), 10, 64)
				return n, err == nil
			}
			if n, ok := walk(c); ok {
				return n, true
			}
		}
		return 0, false
	}
	return walk(el)
}

func mamRows(o *options) []metric {
	has := func(r *result) bool { return r.mam.delivered > 0 }
	return []metric{
		{label: fmt.Sprintf("account archive: messages archived (fill of %d, at most %v)", o.mam.fill, o.mam.fillWindow), value: func(r *result) (float64, bool) {
			return float64(r.mam.delivered), has(r)
		}, unit: "msgs", noRatio: true},
		{label: "account archive: fill rate (archived on both sides)", value: func(r *result) (float64, bool) {
			return float64(r.mam.delivered) / r.mam.fillTime.Seconds(), has(r)
		}, unit: "msg/s"},
		{label: "account archive: size the server reports (RSM count)", value: func(r *result) (float64, bool) {
			return float64(r.mam.count), has(r) && r.mam.count >= 0
		}, unit: "msgs", noRatio: true},
		{label: "account archive: disk written per message during the fill", value: func(r *result) (float64, bool) {
			return float64(r.mam.fillWrite) / float64(r.mam.delivered), has(r)
		}, unit: "bytes/msg"},
		{label: fmt.Sprintf("account archive: newest %d, median", o.mam.page), value: func(r *result) (float64, bool) {
			return ms(r.mam.newest), has(r)
		}, unit: "ms", prec: 2},
		{label: fmt.Sprintf("account archive: newest %d with one contact, median", o.mam.page), value: func(r *result) (float64, bool) {
			return ms(r.mam.with), has(r)
		}, unit: "ms", prec: 2},
		{label: fmt.Sprintf("account archive: oldest %d, median", o.mam.page), value: func(r *result) (float64, bool) {
			return ms(r.mam.oldest), has(r)
		}, unit: "ms", prec: 2},
		{label: "account archive: VmRSS after the fill and pages", value: func(r *result) (float64, bool) {
			return float64(r.mam.rssAfter) / 1024, has(r)
		}, unit: "MiB", prec: 1},
		{label: "account archive: RssAnon after the fill and pages", value: func(r *result) (float64, bool) {
			return float64(r.mam.anonAfter) / 1024, has(r)
		}, unit: "MiB", prec: 1},
	}
}
