package main

import (
	"bytes"
	"fmt"
	"log"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// The group chat phase (issue 12), on each server's MUC service at
// groups.<domain> with the room archive on:
//
//   - fan-out: N occupants in one room; messages from the occupants in
//     turn, each counted complete when all N occupants (the sender's
//     echo included) have it. At saturation (one message in flight per
//     occupant): messages and deliveries per second and per server
//     CPU-second. At a fixed rate: latency from the time a message was due
//     to be sent to its Nth receipt, p50/p99, and failures (not complete
//     5 s after the last send, or complete more than 1 s late).
//   - joining an archived room: a room whose archive holds A messages; a
//     new occupant joins asking for 20 messages of history (time until the
//     room's subject, which ends the history, XEP-0045 §7.2.15), then
//     asks the room's archive (XEP-0313) for the last 50.
//
// Every room gets the same configuration on every server (persistent,
// non-anonymous, open, archived), checked through the room's disco#info
// features before anything is measured.

const (
	nsMUC      = "http://jabber.org/protocol/muc"
	nsMUCUser  = nsMUC + "#user"
	nsMUCOwner = nsMUC + "#owner"
	nsMAM      = "urn:xmpp:mam:2"
	nsRSM      = "http://jabber.org/protocol/rsm"
	nsDelay    = "urn:xmpp:delay"
)

// mucOptions are the phase's sizes (main.go sets them; quick mode is small).
type mucOptions struct {
	occupants int
	satWindow time.Duration
	satMax    int // messages at most in the saturation run
	rate      int // msg/s of the fixed-rate run
	rateWin   time.Duration
	archive   int // messages in the archived room
	joins     int // times the newcomer joins it
	history   int // maxstanzas on that join
	mamMax    int // messages asked of the archive
	idleN     int // sessions in the idle-occupant measurement (0: not run)
	idleRoom  int // occupants per room there
}

// wantRoomFeatures are the disco#info features every benchmark room must
// show on every server: the like-for-like check.
var wantRoomFeatures = []string{"muc_persistent", "muc_nonanonymous", "muc_open", nsMAM}

// roomForm is the muc#roomconfig submission for each server: the standard
// fields plus what one server needs to switch its archive on. Prosody's
// mod_muc_mam archives rooms by default but has its own field for it
// (muc#roomconfig_enablearchiving); ejabberd archives by
// default_room_options (mam: true in ejabberd.yml); xmppd archives every
// room.
func roomForm(server string) [][2]string {
	f := [][2]string{
		{"muc#roomconfig_persistentroom", "1"},
		{"muc#roomconfig_publicroom", "1"},
		{"muc#roomconfig_membersonly", "0"},
		{"muc#roomconfig_whois", "anyone"},
	}
	if server == "prosody" {
		f = append(f, [2]string{"muc#roomconfig_enablearchiving", "1"})
	}
	return f
}

// fanResult is one fan-out run.
type fanResult struct {
	rate       int // msg/s; 0 for saturation
	inflight   int
	sent       int64 // counted messages
	complete   int64 // of those, delivered to every occupant
	receipts   int64 // deliveries counted in the window
	window     time.Duration
	cpuNS      int64 // server on-CPU time in the window
	late       int64
	p50, p99   time.Duration
	maxLat     time.Duration
	serverWait time.Duration
	// sync system calls in the window (saturation only; -1: not counted)
	fsyncs   int64
	fsyncErr string
}

// failures are messages that did not reach every occupant within
// drainLimit, and in a fixed-rate run also those that did but more than
// lateAfter after they were due. At saturation lateness is the generator's
// own queueing (one message in flight per occupant), not a failure.
func (f fanResult) failures() int64 {
	if f.rate == 0 {
		return f.sent - f.complete
	}
	return f.sent - f.complete + f.late
}

type mucResult struct {
	occupants int
	features  string // the fan-out room's disco#info features
	joinAll   time.Duration
	idle      idleOccResult
	sat       fanResult
	fixed     fanResult
	// the archived room
	archived  int
	fillRate  float64 // msg/s while filling it (one sender, 32 in flight)
	joinTimes []time.Duration
	history   int // history messages in the last join
	mamTimes  []time.Duration
	mamGot    int // messages in the last archive answer
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// percentile of sorted values (nearest rank).
func percentile(sorted []int64, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return time.Duration(sorted[min(max(i, 0), len(sorted)-1)])
}

// appendGroupchat writes a room message whose body carries its due time
// (ns), its number k and the run's tag: "TS K TAG filler". The tag keeps
// runs apart (history and archive answers replay old bodies); the number
// is in the body because a room need not keep the sender's id.
func appendGroupchat(b []byte, room string, k, ts int64, tag string) []byte {
	b = append(b, "<message type='groupchat' to='"...)
	b = append(b, room...)
	b = append(b, "' id='g"...)
	b = strconv.AppendInt(b, k, 10)
	b = append(b, "'><body>"...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, k, 10)
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ' ')
	b = append(b, filler...)
	b = append(b, "</body></message>"...)
	return b
}

// groupchatStamp reads what appendGroupchat wrote from a received message.
func groupchatStamp(b []byte) (ts, k int64, tag string, ok bool) {
	i := bytes.Index(b, []byte("<body>"))
	if i < 0 {
		return 0, 0, "", false
	}
	rest := b[i+6:]
	if j := bytes.Index(rest, []byte("</body>")); j >= 0 {
		rest = rest[:j]
	}
	f := bytes.SplitN(rest, []byte(" "), 4)
	if len(f) < 4 {
		return 0, 0, "", false
	}
	ts, err1 := strconv.ParseInt(string(f[0]), 10, 64)
	k, err2 := strconv.ParseInt(string(f[1]), 10, 64)
	if err1 != nil || err2 != nil || k < 0 {
		return 0, 0, "", false
	}
	return ts, k, string(f[2]), true
}

// fanout follows one run's messages: receipts per message, and the
// latency of each message that reached every occupant.
type fanout struct {
	n    int32 // receipts that complete a message
	tag  string
	got  []atomic.Int32
	done chan int64 // numbers of completed messages (saturation tokens)

	receipts atomic.Int64
	complete atomic.Int64
	mu       sync.Mutex
	lat      []int64 // ns from stamp to completion, by completion order
	latK     []int64 // message number of each lat entry
}

func newFanout(n, maxMsgs int, tag string) *fanout {
	return &fanout{n: int32(n), tag: tag, got: make([]atomic.Int32, maxMsgs), done: make(chan int64, maxMsgs)}
}

// receive counts one occupant's copy of a message.
func (f *fanout) receive(b []byte) {
	now := time.Now().UnixNano()
	ts, k, tag, ok := groupchatStamp(b)
	if !ok || tag != f.tag || k >= int64(len(f.got)) || isError(b) {
		return
	}
	f.receipts.Add(1)
	if f.got[k].Add(1) == f.n {
		f.complete.Add(1)
		f.mu.Lock()
		f.lat = append(f.lat, now-ts)
		f.latK = append(f.latK, k)
		f.mu.Unlock()
		select {
		case f.done <- k:
		default:
		}
	}
}

// latencies of completed messages numbered from first on, sorted.
func (f *fanout) latencies(first int64) []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int64
	for i, k := range f.latK {
		if k >= first {
			out = append(out, f.lat[i])
		}
	}
	slices.Sort(out)
	return out
}

func (f *fanout) listen(occ []*session) func() {
	h := f.receive
	for _, s := range occ {
		s.onMsg.Store(&h)
	}
	return func() {
		for _, s := range occ {
			s.onMsg.Store(nil)
		}
	}
}

// fanSaturate keeps `inflight` messages in flight (a new one when one
// has reached every occupant; after 2 s without one, a lost message is
// assumed and another sent), senders in turn, for warm+window or maxMsgs
// messages, whichever ends first.
//
// With syncs, the server's sync system calls are counted over the window
// (perf, as in the offline phase): a server that writes its room archive
// with one fsync per message shows it here.
func fanSaturate(pid int, occ []*session, room, tag string, inflight, maxMsgs int, warm, window time.Duration, syncs bool) fanResult {
	f := newFanout(len(occ), maxMsgs, tag)
	stopListen := f.listen(occ)
	defer stopListen()
	start := time.Now()
	end := start.Add(warm + window)
	var buf []byte
	var s0 sample
	var r0 int64
	var t0 time.Time
	first := int64(-1)
	k := int64(0)
	fsyncs, fsyncErr := int64(-1), error(nil)
	var perf sync.WaitGroup
	mark := func() {
		first, s0, r0, t0 = k, measure(pid), f.receipts.Load(), time.Now()
		if syncs {
			perf.Add(1)
			go func() { defer perf.Done(); fsyncs, fsyncErr = countSyncs(tree(pid), window) }()
		}
	}
	send := func() {
		buf = appendGroupchat(buf[:0], room, k, time.Now().UnixNano(), tag)
		occ[int(k)%len(occ)].c.Send(buf)
		k++
	}
	if warm <= 0 {
		mark()
	}
	for ; k < int64(min(inflight, maxMsgs)); send() {
	}
	for k < int64(maxMsgs) && time.Now().Before(end) {
		if first < 0 && time.Since(start) >= warm {
			mark()
		}
		select {
		case <-f.done:
		case <-time.After(2 * time.Second):
		}
		send()
	}
	if first < 0 {
		mark()
	}
	// The window ends when sending does: what is in flight now balances
	// what was in flight when it began.
	s1, r1 := measure(pid), f.receipts.Load()
	el := time.Since(t0)
	waitComplete(f, k)
	perf.Wait()
	lat := f.latencies(first)
	x := fanResult{inflight: inflight, sent: k - first, complete: int64(len(lat)), receipts: r1 - r0,
		window: el, cpuNS: s1.cpuNS - s0.cpuNS, serverWait: time.Duration(s1.runDelay - s0.runDelay), fsyncs: fsyncs}
	if fsyncErr != nil {
		x.fsyncs, x.fsyncErr = -1, fsyncErr.Error()
	}
	setLatency(&x, lat)
	return x
}

// waitComplete waits up to drainLimit for messages 0..k-1 to complete.
func waitComplete(f *fanout, k int64) {
	for deadline := time.Now().Add(drainLimit); time.Now().Before(deadline) && f.complete.Load() < k; {
		time.Sleep(10 * time.Millisecond)
	}
}

func setLatency(x *fanResult, sorted []int64) {
	for _, l := range sorted {
		if time.Duration(l) > lateAfter {
			x.late++
		}
	}
	if len(sorted) > 0 {
		x.p50, x.p99, x.maxLat = percentile(sorted, 0.5), percentile(sorted, 0.99), time.Duration(sorted[len(sorted)-1])
	}
}

// fanRate sends rate msg/s on a fixed schedule (message k due at
// start+k/rate, stamped with that time: a stall delays what waits behind
// it and the delay is counted) for warm+window.
func fanRate(pid int, occ []*session, room, tag string, rate int, warm, window time.Duration) fanResult {
	total := int64(float64(rate) * (warm + window).Seconds())
	first := int64(float64(rate) * warm.Seconds())
	f := newFanout(len(occ), int(total), tag)
	stopListen := f.listen(occ)
	defer stopListen()
	start := time.Now()
	step := float64(time.Second) / float64(rate)
	var buf []byte
	var s0 sample
	for k := int64(0); k < total; k++ {
		due := start.Add(time.Duration(float64(k) * step))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if k == first {
			s0 = measure(pid)
		}
		buf = appendGroupchat(buf[:0], room, k, due.UnixNano(), tag)
		occ[int(k)%len(occ)].c.Send(buf)
	}
	if d := time.Until(start.Add(warm + window)); d > 0 {
		time.Sleep(d)
	}
	s1 := measure(pid)
	r1 := f.receipts.Load()
	waitComplete(f, total)
	lat := f.latencies(first)
	x := fanResult{rate: rate, sent: total - first, complete: int64(len(lat)), receipts: r1,
		window: window, cpuNS: s1.cpuNS - s0.cpuNS, serverWait: time.Duration(s1.runDelay - s0.runDelay)}
	setLatency(&x, lat)
	return x
}

// isSelfPresence: a presence from room/… with status 110 (XEP-0045
// §7.2.3: this presence is about you); unavailable tells a leave.
func isSelfPresence(el *stream.Element, room string) (self, unavailable bool) {
	if !strings.HasPrefix(el.Get("from"), room+"/") {
		return false, false
	}
	x := el.Child(nsMUCUser, "x")
	if x == nil {
		return false, false
	}
	for _, c := range x.Children() {
		if c.Local == "status" && c.Get("code") == "110" {
			return true, el.Get("type") == "unavailable"
		}
	}
	return false, false
}

// presenceTo sends presence to room/nick and waits for the room's answer
// about us: our own presence (joined, or left when leave), or an error.
func presenceTo(s *session, room, nick, payload string, leave bool, limit time.Duration) error {
	ch := make(chan error, 1)
	f := func(b []byte) {
		el, err := stream.ParseElement(b)
		if err != nil {
			return
		}
		if el.Get("type") == "error" && strings.HasPrefix(el.Get("from"), room) {
			select {
			case ch <- fmt.Errorf("%s refused the presence: %s", room, stanzaError(el)):
			default:
			}
			return
		}
		if self, gone := isSelfPresence(el, room); self && gone == leave {
			select {
			case ch <- nil:
			default:
			}
		}
	}
	s.onPres.Store(&f)
	defer s.onPres.Store(nil)
	typ := ""
	if leave {
		typ = " type='unavailable'"
	}
	if err := s.c.Send([]byte("<presence to='" + room + "/" + nick + "'" + typ + ">" + payload + "</presence>")); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-time.After(limit):
		return fmt.Errorf("no answer from %s to %s's presence within %v", room, nick, limit)
	}
}

// createRoom joins owner to room (making it), submits the configuration
// and checks the room's features.
func createRoom(server string, owner *session, room string) (features []string, err error) {
	if err := presenceTo(owner, room, "owner", "<x xmlns='"+nsMUC+"'/>", false, 30*time.Second); err != nil {
		return nil, fmt.Errorf("create %s: %w", room, err)
	}
	var form strings.Builder
	form.WriteString("<query xmlns='" + nsMUCOwner + "'><x xmlns='jabber:x:data' type='submit'>")
	form.WriteString("<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#roomconfig</value></field>")
	for _, f := range roomForm(server) {
		form.WriteString("<field var='" + f[0] + "'><value>" + f[1] + "</value></field>")
	}
	form.WriteString("</x></query>")
	if _, err := owner.iq("set", room, form.String(), 30*time.Second); err != nil {
		return nil, fmt.Errorf("configure %s: %w", room, err)
	}
	info, err := owner.iq("get", room, "<query xmlns='http://jabber.org/protocol/disco#info'/>", 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("disco#info %s: %w", room, err)
	}
	features = discoFeatures(info)
	for _, w := range wantRoomFeatures {
		if !slices.Contains(features, w) {
			return features, fmt.Errorf("room %s is not configured like the others: no %s among its features %v", room, w, features)
		}
	}
	return features, nil
}

// discoFeatures lists the feature vars of a disco#info answer.
func discoFeatures(el *stream.Element) []string {
	var out []string
	q := el.FirstChild()
	if q == nil {
		return nil
	}
	for _, c := range q.Children() {
		if c.Local == "feature" {
			out = append(out, c.Get("var"))
		}
	}
	slices.Sort(out)
	return out
}

// joinArchived measures one join of room: time until the subject (the end
// of the history) and the number of history messages, then the archive
// query for the last mamMax messages (time until its end, and how many
// came), then leaves.
func joinArchived(s *session, room, nick string, history, mamMax int, limit time.Duration) (join, mam time.Duration, nHist, nMAM int, err error) {
	var hist atomic.Int64
	subj := make(chan struct{}, 1)
	qid := nextID("mam")
	var got atomic.Int64
	f := func(b []byte) {
		el, err := stream.ParseElement(b)
		if err != nil || !strings.HasPrefix(el.Get("from"), room) {
			return
		}
		isResult, hasSubject, hasDelay, hasBody := false, false, false, false
		for _, c := range el.Children() {
			switch {
			case c.Local == "result" && c.Space == nsMAM && c.Get("queryid") == qid:
				isResult = true
			case c.Local == "subject":
				hasSubject = true
			case c.Local == "delay" && c.Space == nsDelay:
				hasDelay = true
			case c.Local == "body":
				hasBody = true
			}
		}
		switch {
		case isResult:
			got.Add(1)
		case hasSubject && !hasBody:
			select {
			case subj <- struct{}{}:
			default:
			}
		case hasDelay && hasBody:
			hist.Add(1)
		}
	}
	s.onMsg.Store(&f)
	defer s.onMsg.Store(nil)
	t0 := time.Now()
	if err := presenceTo(s, room, nick, fmt.Sprintf("<x xmlns='%s'><history maxstanzas='%d'/></x>", nsMUC, history), false, limit); err != nil {
		return 0, 0, 0, 0, err
	}
	select {
	case <-subj:
	case <-time.After(limit):
		return 0, 0, 0, 0, fmt.Errorf("%s: no subject within %v of joining", room, limit)
	}
	join = time.Since(t0)
	nHist = int(hist.Load())
	t1 := time.Now()
	q := fmt.Sprintf("<query xmlns='%s' queryid='%s'><set xmlns='%s'><max>%d</max><before/></set></query>", nsMAM, qid, nsRSM, mamMax)
	if _, err := s.iq("set", room, q, limit); err != nil {
		return join, 0, nHist, 0, fmt.Errorf("archive query: %w", err)
	}
	mam = time.Since(t1)
	nMAM = int(got.Load())
	if err := presenceTo(s, room, nick, "", true, limit); err != nil {
		return join, mam, nHist, nMAM, fmt.Errorf("leave: %w", err)
	}
	return join, mam, nHist, nMAM, nil
}

// joinRooms has sessions ss[from:to] join room(i) as nick "o<i>" with no
// history, eight at a time; room(i) "" leaves ss[i] out. The first error
// wins.
func joinRooms(ss []*session, from, to int, room func(i int) string) error {
	var next atomic.Int64
	next.Store(int64(from))
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				r := room(i)
				if r == "" {
					continue
				}
				if err := presenceTo(ss[i], r, "o"+strconv.Itoa(i), "<x xmlns='"+nsMUC+"'><history maxstanzas='0'/></x>", false, 30*time.Second); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// mucPhase runs the group chat phase with sessions of its own: accounts
// first..first+occupants for the fan-out room (the first one owns both
// rooms) and the next one as the newcomer to the archived room.
func mucPhase(o *options, name string, pid int, l *loader, first int, r *result) error {
	m := o.muc
	x := &r.muc
	x.occupants = m.occupants
	ss, _, err := l.openSessions(first, first+m.occupants+1, 8, false, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("group chat sessions: %w", err)
	}
	defer closeAll(ss)
	occ, newcomer := ss[:m.occupants], ss[m.occupants]
	service := "groups." + o.domain
	fanRoom, arcRoom := "bench-fanout@"+service, "bench-archive@"+service
	time.Sleep(time.Second)
	features, err := createRoom(name, occ[0], fanRoom)
	x.features = strings.Join(features, " ")
	if err != nil {
		return err
	}
	t0 := time.Now()
	// occ[0] owns the room and joined when it made it.
	if err := joinRooms(occ, 1, len(occ), func(int) string { return fanRoom }); err != nil {
		return fmt.Errorf("joining %s: %w", fanRoom, err)
	}
	x.joinAll = time.Since(t0)
	log.Printf("%s: %d occupants joined %s in %v", name, m.occupants, fanRoom, x.joinAll.Round(time.Millisecond))

	log.Printf("%s: group chat fixed rate %d msg/s to %d occupants, %v", name, m.rate, m.occupants, m.rateWin)
	x.fixed = fanRate(pid, occ, fanRoom, "rate", m.rate, time.Second, m.rateWin)
	x.fixed.fsyncs = -1
	log.Printf("%s: group chat saturation, %d in flight, %v or %d messages", name, m.occupants, m.satWindow, m.satMax)
	x.sat = fanSaturate(pid, occ, fanRoom, "sat", m.occupants, m.satMax, time.Second, m.satWindow, true)
	if x.sat.fsyncErr != "" {
		r.notes = append(r.notes, "group chat: syncs not counted: "+x.sat.fsyncErr)
	}
	log.Printf("%s: group chat: %.0f msg/s, %.0f deliveries/s at saturation (%.0f per CPU-s); p50/p99 at %d msg/s %v / %v, %d failures",
		name, float64(x.sat.sent)/x.sat.window.Seconds(), float64(x.sat.receipts)/x.sat.window.Seconds(),
		float64(x.sat.receipts)/(float64(x.sat.cpuNS)/1e9), m.rate, x.fixed.p50.Round(time.Microsecond), x.fixed.p99.Round(time.Microsecond), x.fixed.failures())
	// Occupants leave before the archive part, so that it measures the
	// join, not the fan-out room's traffic.
	closeAll(occ[1:])

	if _, err := createRoom(name, occ[0], arcRoom); err != nil {
		return err
	}
	log.Printf("%s: filling %s with %d messages", name, arcRoom, m.archive)
	t1 := time.Now()
	fill := fanSaturate(pid, occ[:1], arcRoom, "fill", 32, m.archive, 0, 5*time.Minute, false)
	if fill.complete != int64(m.archive) {
		return fmt.Errorf("filling %s: %d of %d messages came back", arcRoom, fill.complete, m.archive)
	}
	x.archived = m.archive
	x.fillRate = float64(m.archive) / time.Since(t1).Seconds()
	for i := 0; i < m.joins; i++ {
		j, q, nh, nm, err := joinArchived(newcomer, arcRoom, "newcomer", m.history, m.mamMax, 30*time.Second)
		if err != nil {
			return fmt.Errorf("join of %s: %w", arcRoom, err)
		}
		x.joinTimes, x.mamTimes, x.history, x.mamGot = append(x.joinTimes, j), append(x.mamTimes, q), nh, nm
	}
	log.Printf("%s: join of a room with %d archived: %v (history %d), last %d from the archive: %v (%d came)",
		name, m.archive, median(x.joinTimes).Round(time.Microsecond), x.history, m.mamMax, median(x.mamTimes).Round(time.Microsecond), x.mamGot)
	if x.history != min(m.history, m.archive) || x.mamGot != min(m.mamMax, m.archive) {
		r.notes = append(r.notes, fmt.Sprintf("group chat: the join got %d history messages (asked %d) and the archive query %d (asked %d)",
			x.history, m.history, x.mamGot, m.mamMax))
	}
	return nil
}

// idleOccupants is the per-occupant memory measurement (issue 12's "RSS
// per idle occupant under 2 KiB beyond the session's own"). It used to be
// VmRSS after 49 joins minus before, over 50: under 1 MiB in all, inside
// the noise of a runtime's heap growth and of the 2,500 presences of the
// joins themselves (15–19 KiB "per occupant" on xmppd whose live heap per
// occupant was under 1 KiB). Now, on a freshly started server: N sessions
// log in and sit idle; RssAnon once it has settled; the same N sessions
// join rooms of K (the first of each creating and configuring it like the
// fan-out room); RssAnon once settled again. (after − before) / N is the
// occupant's own cost; (before − rest) / N the session's, for scale.
// RssAnon, not VmRSS: file-backed pages (xmppd's mmapped store, shared
// libraries paged in) are not per-occupant memory.
type idleOccResult struct {
	n, rooms, perRoom     int
	anonRest, anonSess    int64 // KiB, settled
	anonOcc               int64 // KiB, settled after the joins
	half                  int   // occupants in the first half of the rooms
	anonHalf              int64 // KiB, settled after the first half joined
	rssSess, rssOcc       int64 // VmRSS beside them, KiB
	joinAll               time.Duration
	settleSess, settleOcc time.Duration // time RssAnon took to settle
	unsettled             bool          // a settle hit its limit
}

func (x idleOccResult) perOccKB() float64 {
	return float64(x.anonOcc-x.anonSess) / float64(max(x.n, 1))
}

// marginalKB is the growth over the second half's occupants: one more
// idle occupant's cost on a server that has been through a join burst.
func (x idleOccResult) marginalKB() float64 {
	return float64(x.anonOcc-x.anonHalf) / float64(max(x.n-x.half, 1))
}

func (x idleOccResult) perSessKB() float64 {
	return float64(x.anonSess-x.anonRest) / float64(max(x.n, 1))
}

// settledAnon samples the tree's RssAnon every second until the last five
// samples lie within 0.5% (at least 64 KiB) of each other, or limit passes;
// it returns their median and VmRSS with it. A Go heap returns freed pages
// to the kernel over seconds (the background scavenger), Erlang's and
// Lua's allocators keep theirs: one sample two seconds after a burst
// measures the burst.
func settledAnon(pid int, limit time.Duration) (anon, rss int64, took time.Duration, ok bool) {
	t0 := time.Now()
	var last []sample
	for {
		time.Sleep(time.Second)
		last = append(last, measure(pid))
		if len(last) > 5 {
			last = last[1:]
		}
		if len(last) == 5 {
			lo, hi := last[0].rssAnonKB, last[0].rssAnonKB
			for _, s := range last {
				lo, hi = min(lo, s.rssAnonKB), max(hi, s.rssAnonKB)
			}
			ok = hi-lo <= max(hi/200, 64)
			if ok || time.Since(t0) >= limit {
				s := slices.Clone(last)
				slices.SortFunc(s, func(a, b sample) int { return int(a.rssAnonKB - b.rssAnonKB) })
				return s[2].rssAnonKB, s[2].rssKB, time.Since(t0), ok
			}
		}
	}
}

// idleOccupantsPhase runs the measurement on a fresh server with nothing
// else logged in, accounts first..first+N-1.
func idleOccupantsPhase(o *options, name string, pid int, l *loader, first int, r *result) error {
	m := o.muc
	x := &r.muc.idle
	x.n, x.perRoom = m.idleN, max(m.idleRoom, 2)
	x.rooms = (x.n + x.perRoom - 1) / x.perRoom
	var ok bool
	x.anonRest, _, _, _ = settledAnon(pid, 20*time.Second)
	ss, _, err := l.openSessions(first, first+x.n, 16, false, 5*time.Minute)
	if err != nil {
		return fmt.Errorf("idle occupants' sessions: %w", err)
	}
	defer closeAll(ss)
	x.anonSess, x.rssSess, x.settleSess, ok = settledAnon(pid, 45*time.Second)
	x.unsettled = !ok
	log.Printf("%s: %d idle sessions: RssAnon %d KiB (rest %d), settled in %v", name, x.n, x.anonSess, x.anonRest, x.settleSess.Round(time.Second))
	if o.idleHold > 0 {
		log.Printf("%s: holding %d idle sessions for %v (server pid %d)", name, x.n, o.idleHold, pid)
		time.Sleep(o.idleHold)
	}
	service := "groups." + o.domain
	room := func(k int) string { return "bench-idle" + strconv.Itoa(k) + "@" + service }
	// The rooms are joined in two halves, RssAnon settled after each:
	// the second half's growth over its occupants is the cost of one
	// more idle occupant once the server has been through a join burst
	// (a heap that grew for the first burst's garbage stays grown, a
	// fixed cost that the figure over all N spreads across them).
	join := func(from, to int) error {
		for k := from / x.perRoom; k*x.perRoom < to; k++ {
			if _, err := createRoom(name, ss[k*x.perRoom], room(k)); err != nil {
				return err
			}
		}
		err := joinRooms(ss, from, to, func(i int) string {
			if i%x.perRoom == 0 {
				return "" // the room's owner, joined when it made it
			}
			return room(i / x.perRoom)
		})
		if err != nil {
			return fmt.Errorf("idle occupants joining: %w", err)
		}
		return nil
	}
	x.half = (x.rooms / 2) * x.perRoom
	t0 := time.Now()
	if err := join(0, x.half); err != nil {
		return err
	}
	x.joinAll = time.Since(t0)
	var took time.Duration
	x.anonHalf, _, took, ok = settledAnon(pid, 45*time.Second)
	x.unsettled = x.unsettled || !ok
	t1 := time.Now()
	if err := join(x.half, len(ss)); err != nil {
		return err
	}
	x.joinAll += time.Since(t1)
	x.settleOcc = took
	x.anonOcc, x.rssOcc, took, ok = settledAnon(pid, 45*time.Second)
	x.settleOcc = max(x.settleOcc, took)
	x.unsettled = x.unsettled || !ok
	log.Printf("%s: %d idle occupants in %d rooms of %d (joined in %v): RssAnon %d KiB (%d after the first %d), settled in %v: %.2f KiB per occupant, %.2f over the second %d, %.2f per session",
		name, x.n, x.rooms, x.perRoom, x.joinAll.Round(time.Millisecond), x.anonOcc, x.anonHalf, x.half, x.settleOcc.Round(time.Second), x.perOccKB(), x.marginalKB(), x.n-x.half, x.perSessKB())
	if o.idleHold > 0 {
		log.Printf("%s: holding %d sessions before and after the joins for %v each (server pid %d)", name, x.n, o.idleHold, pid)
		time.Sleep(o.idleHold)
	}
	if x.unsettled {
		r.notes = append(r.notes, fmt.Sprintf("idle occupants: RssAnon had not settled (within 0.5%% over 5 s) after %v / %v; the median of the last 5 s is used", x.settleSess.Round(time.Second), x.settleOcc.Round(time.Second)))
	}
	return nil
}
