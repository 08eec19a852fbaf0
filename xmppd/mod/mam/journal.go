package mam

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// The journal: where an archived message is made durable.
//
// Every commit of the store's commit queue wrote each of its records into
// its account's range of the archive bucket, so a commit of ~20 messages
// at 1,000 msg/s dirtied one leaf page per account touched plus their
// branches: bbolt wrote 60–90 pages, ~15–17.6 KB per message, for an SD
// card to wear out on (issue 13's benchmark). Now a commit appends the
// batch's messages as one value under the next key of one journal bucket
// (the message's XML once, for both parties), which dirties the journal's
// last leaf and little else; and every few seconds (or mergeMessages
// messages) a merge moves the journal into the accounts' segments
// (segment.go) in one larger transaction, where each account's records
// arrive together.
//
// The merge no longer copies a message's XML into each party's segment:
// a merged record refers to the journal value (key and message index)
// that holds it, and merged values stay, below a watermark (mam_meta's
// "merged"). Copying the XML once per party was most of a merge's cost at
// saturation (decoding and re-encoding it, and its commit writing ~2× the
// messages' bytes again). Retention deletes a merged value once all its
// messages expired (expireJournal); an account deletion rewrites the
// values that hold its messages (forgetJournal); an account's cap evicts
// its records, and their XML goes with retention.
//
// Nothing waits for the merge: the journal commit is the durability point
// (the sender's acknowledgement waits for it, server.Commit), and every
// reader of the archive reads the values above the watermark too, inside
// its own transaction (view): a record is in exactly one of the two in
// any transaction, because the merge moves the watermark in the
// transaction that writes the records. So queries, ids, metadata,
// exports and the tests' counts see journaled records; the charge to the
// account's budget is made at merge; retention and account deletion
// merge first; eviction at the cap merges when the oldest records are
// still in the journal. After kill -9 the journal is simply still there,
// and merged later.
//
// A journal value: journalVersion, then messages: uvarint number of
// parties, each uvarint length + account, id (8 bytes big-endian),
// direction byte, uvarint length + peer; then uvarint length + XML.
var bucketJournal = []byte("mam_journal")

// Version 2 (journalVersion) has a 64-bit filter of its parties'
// accounts after the version byte (userBits): a query reads the values
// above the merge's watermark for one account's records, and steps over
// the others' without decoding them, so the journal may be longer
// between merges (a merge every 4,096 messages was ~12% of the server's
// CPU at saturation). Version 1, from before the filter, reads alike.
const (
	journalVersion1 = 1
	journalVersion  = 2
	journalHeader   = 9
)

// userBits is user's two bits in a journal value's filter (FNV-1a).
func userBits[T string | []byte](user T) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(user); i++ {
		h ^= uint64(user[i])
		h *= 1099511628211
	}
	return 1<<(h&63) | 1<<(h>>6&63)
}

// journalBody returns the messages of the journal value v and its
// parties' filter (all bits set for a version 1 value: anyone may be in
// it); false if v is no journal value.
func journalBody(v []byte) ([]byte, uint64, bool) {
	switch {
	case len(v) >= 1 && v[0] == journalVersion1:
		return v[1:], ^uint64(0), true
	case len(v) >= journalHeader && v[0] == journalVersion:
		return v[journalHeader:], binary.BigEndian.Uint64(v[1:journalHeader]), true
	}
	return nil, 0, false
}

// Merge policy: a merge starts mergeDelay after the first message
// journaled since the last one, or at once when mergeMessages are
// waiting or mergeUserMessages of one account's records; one merge
// transaction moves at most mergeMaxRecords records. What a query reads
// of the journal besides its page is the account's own records (decoded)
// and a filter per other value (journalVersion): with one account's
// records bounded as before, the whole journal may be 8× longer than it
// was, and a merge is 8× rarer at saturation (each account's records
// arrive ~8× more at a time: one seek, one rewrite of its newest segment
// and one charge for them; hearth-bench saturation +8% msgs per server
// CPU-second).
// Five seconds at 1,000 msg/s gives each active account ~100 records per
// merge, a few full segments: hearth-bench's 1,000 msg/s run wrote ~2.6
// KB to disk per message in all (16.6 KB before; TestSmallCommitWrites-
// FewPages: 8.3 pages for a commit of 20 messages, 68.7 before). A query
// reads at most ~mergeMessages journaled messages besides its page
// (+0.1-0.5 ms, BenchmarkPage50Of100k).
//
// The first two are atomics only because tests shorten them: a merge's
// goroutine can still read them while a finished test's cleanup puts them
// back (a data race under -race in CI).
var (
	mergeDelayNs      = newInt64(int64(5 * time.Second))
	mergeMessages     = newInt64(32768)
	mergeUserMessages = newInt64(4096)
	mergeMaxRecords   = 70000
)

func newInt64(v int64) *atomic.Int64 {
	a := new(atomic.Int64)
	a.Store(v)
	return a
}

func mergeDelay() time.Duration { return time.Duration(mergeDelayNs.Load()) }

// jEntry is one party's record of a journaled message.
type jEntry struct {
	user string
	id   uint64
	dir  byte
	peer string
}

type jMsg struct {
	entries []jEntry
	xml     []byte
	cut     [2]int // xml[cut[0]:cut[1]] is not stored (the recipient's stanza-id, see archive)
}

// jBatch is what one commit adds to the journal.
type jBatch struct {
	msgs []jMsg
}

type journalKey struct{}

func newJBatch() any { return &jBatch{} }

// queueLocal is memory the commit queue's goroutine reuses from one
// transaction to the next (only that goroutine builds and flushes
// batches, one transaction after the other): the journal's values, a
// flushed batch (its slice grew anew in every commit) and the two
// functions BatchLocal takes (a closure made per message before).
type queueLocal struct {
	ar    arena
	batch *jBatch
	init  func() any
	flush func(tx *bolt.Tx, v any) error

	// Records flushed per account since the last merge began (counted
	// here, where no lock is needed: a map behind a mutex per message
	// cost 1% of the server's CPU), the most of them, and the merge
	// epoch they count from.
	perUser map[string]int64
	busiest atomic.Int64
	epoch   int64
	merges  *atomic.Int64 // merges begun (the merger's)
}

func newQueueLocal() *queueLocal {
	q := new(queueLocal)
	q.init = func() any {
		if b := q.batch; b != nil {
			q.batch = nil
			return b
		}
		return newJBatch()
	}
	q.flush = func(tx *bolt.Tx, v any) error {
		q.ar.reset() // the previous transaction is over: its values are bbolt's no more
		jb := v.(*jBatch)
		err := flushJournal(tx, jb, &q.ar)
		q.count(jb)
		clear(jb.msgs) // copied into the values: the stanzas' XML may go back to its pool
		jb.msgs = jb.msgs[:0]
		q.batch = jb
		return err
	}
	return q
}

// count adds jb's records to the per-account counts.
func (q *queueLocal) count(jb *jBatch) {
	if q.merges == nil {
		return
	}
	if e := q.merges.Load(); e != q.epoch || q.perUser == nil {
		q.epoch = e
		if q.perUser == nil {
			q.perUser = map[string]int64{}
		}
		clear(q.perUser)
		q.busiest.Store(0)
	}
	b := q.busiest.Load()
	for _, m := range jb.msgs {
		for _, e := range m.entries {
			c := q.perUser[e.user] + 1
			q.perUser[e.user] = c
			b = max(b, c)
		}
	}
	q.busiest.Store(b)
}

// journal adds one message (its parties' records and its XML) to the
// commit queue's batch; outside the queue (Store.Batch), the message is
// journaled on its own at once. q is the queue's (nil in tests).
func journal(st *store.Store, tx *bolt.Tx, entries []jEntry, xml []byte, cut [2]int, q *queueLocal) error {
	if q == nil {
		q = newQueueLocal()
	}
	v, ok := st.BatchLocal(tx, journalKey{}, q.init, q.flush)
	jb, _ := v.(*jBatch)
	if !ok {
		jb = newJBatch().(*jBatch)
	}
	jb.msgs = append(jb.msgs, jMsg{entries: entries, xml: xml, cut: cut})
	if !ok {
		return flushJournal(tx, jb, nil)
	}
	return nil
}

// flushJournal appends the batch to the journal, in values cut from ar
// (nil: the heap). Nothing is charged here (see charge).
func flushJournal(tx *bolt.Tx, jb *jBatch, ar *arena) error {
	var j *bolt.Bucket
	var v []byte
	var bloom uint64
	put := func() error {
		if len(v) <= journalHeader {
			return nil
		}
		binary.BigEndian.PutUint64(v[1:journalHeader], bloom)
		bloom = 0
		if j == nil {
			var err error
			if j, err = tx.CreateBucketIfNotExists(bucketJournal); err != nil {
				return err
			}
			// Appended at the end: a full journal page stays full.
			j.FillPercent = 1
		}
		seq, err := j.NextSequence()
		if err != nil {
			return err
		}
		err = j.Put(store.U64(seq), v)
		v = nil
		return err
	}
	for _, m := range jb.msgs {
		live, size := len(m.entries), 2*binary.MaxVarintLen64+len(m.xml)
		for _, e := range m.entries {
			size += 2*binary.MaxVarintLen64 + 9 + len(e.user) + len(e.peer)
		}
		if live == 0 {
			continue
		}
		// Values of at most half a page: bbolt copies a node of more
		// than a page into a fresh multi-page buffer at every commit (a
		// third of the server's allocations at saturation with one
		// value per batch), a page-sized one into a pooled page.
		if v != nil && len(v)+size > journalValueMax {
			if err := put(); err != nil {
				return err
			}
		}
		if v == nil {
			n := max(journalValueMax, journalHeader+size)
			if ar != nil {
				v = ar.alloc(n)
			} else {
				v = make([]byte, 0, n)
			}
			v = append(v, journalVersion, 0, 0, 0, 0, 0, 0, 0, 0)
		}
		v = appendJMsg(v, m)
		for _, e := range m.entries {
			bloom |= userBits(e.user)
		}
	}
	return put()
}

// appendJMsg appends one message of a journal value.
func appendJMsg(v []byte, m jMsg) []byte {
	v = binary.AppendUvarint(v, uint64(len(m.entries)))
	for _, e := range m.entries {
		v = binary.AppendUvarint(v, uint64(len(e.user)))
		v = append(v, e.user...)
		v = binary.BigEndian.AppendUint64(v, e.id)
		v = append(v, e.dir)
		v = binary.AppendUvarint(v, uint64(len(e.peer)))
		v = append(v, e.peer...)
	}
	v = binary.AppendUvarint(v, uint64(len(m.xml)-(m.cut[1]-m.cut[0])))
	v = append(v, m.xml[:m.cut[0]]...)
	return append(v, m.xml[m.cut[1]:]...)
}

// jCursor reads the messages of a journal value's body in order (the
// format appendJMsg writes), every read checking its bounds: false, the
// value is damaged. It is the one reader of that format, whether a value
// is decoded whole, for one account's records, or for one message's XML.
type jCursor struct{ p []byte }

// more reports whether another message follows.
func (c *jCursor) more() bool { return len(c.p) > 0 }

// parties starts the next message: how many parties it has.
func (c *jCursor) parties() (int, bool) {
	n, w := binary.Uvarint(c.p)
	if w <= 0 || n > 64 {
		return 0, false
	}
	c.p = c.p[w:]
	return int(n), true
}

// party reads one party of the message: its account, its record's id
// and direction, and its peer.
func (c *jCursor) party() (user []byte, id uint64, dir byte, peer []byte, ok bool) {
	l, w := binary.Uvarint(c.p)
	if w <= 0 || uint64(len(c.p)-w) < l+9 {
		return nil, 0, 0, nil, false
	}
	user = c.p[w : w+int(l)]
	c.p = c.p[w+int(l):]
	id, dir = binary.BigEndian.Uint64(c.p), c.p[8]
	c.p = c.p[9:]
	if peer, ok = c.bytes(); !ok {
		return nil, 0, 0, nil, false
	}
	return user, id, dir, peer, true
}

// bytes reads a length and that many bytes (a peer, the message's XML),
// their capacity clipped so that appending to them copies.
func (c *jCursor) bytes() ([]byte, bool) {
	l, w := binary.Uvarint(c.p)
	if w <= 0 || uint64(len(c.p)-w) < l {
		return nil, false
	}
	b := c.p[w : w+int(l) : w+int(l)]
	c.p = c.p[w+int(l):]
	return b, true
}

// decodeJournalValue returns the messages of one journal value, every
// one, emptied ones too (their XML points into v).
func decodeJournalValue(v []byte) ([]jMsg, error) {
	body, _, ok := journalBody(v)
	if !ok {
		return nil, errBadRecord
	}
	var out []jMsg
	for c := (jCursor{body}); c.more(); {
		n, ok := c.parties()
		if !ok {
			return nil, errBadRecord
		}
		var m jMsg
		for range n {
			user, id, dir, peer, ok := c.party()
			if !ok {
				return nil, errBadRecord
			}
			m.entries = append(m.entries, jEntry{user: string(user), id: id, dir: dir, peer: string(peer)})
		}
		if m.xml, ok = c.bytes(); !ok {
			return nil, errBadRecord
		}
		out = append(out, m)
	}
	return out, nil
}

// journalValueMax bounds a journal value so that two fit one page (see
// segMaxBytes).
const journalValueMax = 1900

// decodeJournalWith calls fn with every record of the journal value v
// stored under key k, their XML pointing into v, their ref and idx saying
// where it is; the peers' strings are made by str, and only for the
// records of only when it is not nil (a query reads the whole journal
// for one account's records: the others' peers are never made into
// strings). A message with no parties left (an account deletion emptied
// it, see forgetBodies) is skipped but counted: indexes stay put.
func decodeJournalWith(k, v, only []byte, str func([]byte) string, fn func(user []byte, r record)) error {
	body, filter, ok := journalBody(v)
	if !ok || len(k) != 8 {
		return errBadRecord
	}
	if only != nil && filter&userBits(only) != userBits(only) {
		return nil // none of only's
	}
	key := binary.BigEndian.Uint64(k)
	type party struct {
		user []byte
		r    record
	}
	var parties [4]party
	idx := uint32(0)
	for c := (jCursor{body}); c.more(); idx++ {
		n, ok := c.parties()
		if !ok {
			return errBadRecord
		}
		ps := parties[:0]
		for range n {
			user, id, dir, peer, ok := c.party()
			if !ok {
				return errBadRecord
			}
			if only != nil && !bytes.Equal(user, only) {
				continue
			}
			ps = append(ps, party{user, record{id: id, dir: dir, ref: key, idx: idx, peer: str(peer)}})
		}
		xml, ok := c.bytes()
		if !ok {
			return errBadRecord
		}
		for _, pt := range ps {
			pt.r.xml, pt.r.xlen = xml, len(xml)
			fn(pt.user, pt.r)
		}
	}
	return nil
}

// journalXML returns the XML of message idx of the journal value under
// key ref: a merged record's (segment.go). False if the value is gone
// (retention deleted it: the record is expired too and its sweep has not
// reached it yet) or does not have it.
func journalXML(j *bolt.Bucket, ref uint64, idx uint32) ([]byte, bool) {
	if j == nil {
		return nil, false
	}
	body, _, ok := journalBody(j.Get(store.U64(ref)))
	if !ok {
		return nil, false
	}
	for c, i := (jCursor{body}), uint32(0); c.more(); i++ {
		n, ok := c.parties()
		if !ok {
			return nil, false
		}
		for range n {
			if _, _, _, _, ok := c.party(); !ok {
				return nil, false
			}
		}
		xml, ok := c.bytes()
		if !ok || i == idx {
			return xml, ok
		}
	}
	return nil, false
}

// The merge's watermark: every journal value under a key up to it has
// been merged (its records are in the segments, referring to it); the
// ones above it are the journal proper, read by every view.
var (
	bucketMeta = []byte("mam_meta")
	keyMerged  = []byte("merged")
)

func mergedUpTo(tx *bolt.Tx) uint64 {
	if b := tx.Bucket(bucketMeta); b != nil {
		if v := b.Get(keyMerged); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
	}
	return 0
}

// journalOf returns user's journaled (not yet merged) records in tx, by
// id.
func journalOf(tx *bolt.Tx, user string) []record {
	j := tx.Bucket(bucketJournal)
	if j == nil {
		return nil
	}
	out := make([]record, 0, 64)
	u := []byte(user)
	var last string // the same peer again and again: one string
	str := func(b []byte) string {
		if string(b) != last {
			last = string(b)
		}
		return last
	}
	c := j.Cursor()
	for k, v := c.Seek(store.U64(mergedUpTo(tx) + 1)); k != nil; k, v = c.Next() {
		_ = decodeJournalWith(k, v, u, str, func(_ []byte, r record) { out = append(out, r) })
	}
	byID := func(a, b record) int { return cmpU64(a.id, b.id) }
	if !slices.IsSortedFunc(out, byID) {
		slices.SortFunc(out, byID)
	}
	return out
}

// mergeTx merges up to limit journaled records into the accounts'
// segments, in tx, and reports how many it merged and whether more are
// left. The journal values stay (the segments refer to their XML);
// the watermark moves past them. Records of accounts that no longer
// exist (a commit that finished after the account was deleted) are
// dropped.
func mergeTx(tx *bolt.Tx, limit int, ar *arena, sc *mergeScratch) (int, bool, error) {
	if sc == nil {
		sc = new(mergeScratch)
	}
	j := tx.Bucket(bucketJournal)
	if j == nil {
		return 0, false, nil
	}
	// Records grouped by account without sorting strings: each account
	// gets a number as it is first seen, then a counting pass puts every
	// account's records together (a stable sort by name was a third of
	// the merge's CPU).
	recs := sc.recs[:0]
	defer func() {
		// Kept for the next merge (growing this slice record by record
		// was half of the merge's CPU); what it points to is the
		// transaction's, or peers' strings until then.
		sc.recs = recs[:0]
	}()
	var users []string
	index := map[string]int{}
	peers := map[string]string{} // one string per peer
	str := func(b []byte) string {
		if s, ok := peers[string(b)]; ok {
			return s
		}
		s := string(b)
		peers[s] = s
		return s
	}
	var upTo uint64
	n, more := 0, false
	c := j.Cursor()
	for k, v := c.Seek(store.U64(mergedUpTo(tx) + 1)); k != nil; k, v = c.Next() {
		if n >= limit {
			more = true
			break
		}
		if len(k) == 8 {
			upTo = binary.BigEndian.Uint64(k)
		}
		err := decodeJournalWith(k, v, nil, str, func(user []byte, r record) {
			u, ok := index[string(user)]
			if !ok {
				u = len(users)
				users = append(users, string(user))
				index[users[u]] = u
			}
			recs = append(recs, owned{u, r})
			n++
		})
		if err != nil {
			// Not ours to read: stepped over rather than blocking every
			// later merge (a journal value is only ever written whole).
			continue
		}
	}
	if upTo == 0 {
		return 0, false, nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketMsgs)
	if err != nil {
		return 0, false, err
	}
	start := make([]int, len(users)+1)
	for _, o := range recs {
		start[o.u+1]++
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	grouped := slices.Grow(sc.grouped[:0], len(recs))[:len(recs)]
	sc.grouped = grouped
	fill := slices.Clone(start[:len(users)])
	for _, o := range recs {
		grouped[fill[o.u]] = o.r
		fill[o.u]++
	}
	// Accounts in name order: the same writes whatever the map's order.
	order := make([]int, len(users))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(users[a], users[b]) })
	for _, u := range order {
		run := grouped[start[u]:start[u+1]]
		byID := func(a, b record) int { return cmpU64(a.id, b.id) }
		if !slices.IsSortedFunc(run, byID) {
			slices.SortStableFunc(run, byID)
		}
		run = slices.CompactFunc(run, func(a, b record) bool { return a.id == b.id })
		if !store.AccountExistsTx(tx, users[u]) {
			continue
		}
		sizes := make([]int64, len(run))
		for i, r := range run {
			sizes[i] = recSize(r)
		}
		drop, err := charge(tx, users[u], sizes)
		if err != nil {
			return 0, false, fmt.Errorf("mam: merge %s: %w", users[u], err)
		}
		// At the cap with nothing older left to give back: the oldest
		// of these make room (an archive keeps the newest).
		run = run[drop:]
		if len(run) == 0 {
			continue
		}
		if err := storeRecords(b, users[u], run, ar); err != nil {
			return 0, false, fmt.Errorf("mam: merge %s: %w", users[u], err)
		}
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return 0, false, err
	}
	return n, more, meta.Put(keyMerged, store.U64(upTo))
}

// owned is a merged record and the number of its account.
type owned struct {
	u int
	r record
}

// mergeScratch is memory one merge after the other reuses.
type mergeScratch struct {
	recs    []owned
	grouped []record
}

// merger schedules merges of the journal.
type merger struct {
	waiting atomic.Int64 // messages journaled since the last merge began (approximate)
	running atomic.Bool  // a goroutine is merging
	timer   atomic.Bool  // a delayed merge is scheduled

	begun   atomic.Int64 // merges begun: the commit queue's per-account counts start again
	release atomic.Bool  // a release of the merge's scratch is scheduled
}

// journaled counts a message committed to the journal and starts the
// merge it makes due: at once past mergeMessages (even while a delayed one
// is scheduled: one flag for both let the journal grow for mergeDelay
// after every merge, 100,000 messages in the bench's archive fill, and a
// query then read them all), else mergeDelay after the first. Called on
// the commit queue's goroutine: the merge runs elsewhere.
func (m *mod) journaled() {
	n := m.merges.waiting.Add(1)
	if n >= mergeMessages.Load() || m.queue.busiest.Load() >= mergeUserMessages.Load() {
		if m.merges.running.CompareAndSwap(false, true) {
			go m.runMerges()
		}
		return
	}
	if n == 1 {
		m.mergeLater()
	}
}

// mergeLater schedules a merge mergeDelay from now, unless one is.
func (m *mod) mergeLater() {
	if !m.merges.timer.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(mergeDelay(), func() {
		m.merges.timer.Store(false)
		if m.merges.running.CompareAndSwap(false, true) {
			m.runMerges()
		}
	})
}

// runMerges merges until fewer than mergeMessages wait, then leaves the
// rest to a delayed merge. The caller set merges.running.
func (m *mod) runMerges() {
	for {
		err := m.merge()
		if errors.Is(err, bolt.ErrDatabaseNotOpen) {
			m.merges.running.Store(false)
			return
		}
		if err != nil {
			m.srv.Log.Error("mam: journal merge", "err", err)
			break
		}
		if m.merges.waiting.Load() < mergeMessages.Load() && m.queue.busiest.Load() < mergeUserMessages.Load() {
			break
		}
	}
	m.merges.running.Store(false)
	if m.merges.waiting.Load() > 0 {
		m.mergeLater()
	} else if m.merges.release.CompareAndSwap(false, true) {
		// Nothing more may come: the scratch a busy time grew (up to
		// ~12 MB) goes if nothing is merged meanwhile (it stayed for
		// good when the load stopped right after a large merge).
		time.AfterFunc(mergeDelay(), func() {
			m.merges.release.Store(false)
			m.mergeMu.Lock()
			if m.merges.waiting.Load() == 0 && !m.merges.running.Load() {
				m.mergeScratch = mergeScratch{}
			}
			m.mergeMu.Unlock()
		})
	}
}

// merge moves everything journaled so far into the accounts' segments.
func (m *mod) merge() error {
	m.mergeMu.Lock()
	defer m.mergeMu.Unlock()
	for {
		m.merges.waiting.Store(0)
		m.merges.begun.Add(1)
		m.queue.busiest.Store(0) // (the queue clears its counts at its next flush)
		var more, small bool
		err := m.srv.Store.Update(func(tx *bolt.Tx) error {
			m.mergeArena.reset() // the previous merge's transaction is over
			var err error
			var n int
			n, more, err = mergeTx(tx, mergeMaxRecords, &m.mergeArena, &m.mergeScratch)
			small = n < 4096
			return err
		})
		if err != nil {
			return err
		}
		if small {
			// The load has dropped: the scratch a busy time grew (up to
			// mergeMaxRecords records, ~12 MB) is not kept for it.
			m.mergeScratch = mergeScratch{}
		}
		if !more {
			return nil
		}
	}
}
