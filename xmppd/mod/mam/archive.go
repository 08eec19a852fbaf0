package mam

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Storage layout. One bucket holds every account's archive, keyed
// user \0 id, where id is 8 bytes big-endian: the archiving time in
// microseconds since the epoch, raised to one past the account's newest
// id when the clock has not moved on (or moved back: a Pi without a
// battery clock), so ids are unique, ordered like the archive, and a
// start/end query is a cursor Seek. The stanza-id handed to clients is
// the id in 16 hex digits (like the room archive's in mod/muc).
//
// A record is: version byte, direction byte, uvarint length + the other
// party's full JID (what the "with" filter compares, without parsing the
// stanza), then the stanza's XML.
var (
	bucketMsgs  = []byte("mam_msgs")
	bucketPrefs = []byte("mam_prefs")
)

const (
	recVersion = 1
	dirIn      = 0 // received by the account
	dirOut     = 1 // sent by the account
)

// Kind is the archive's charge on the account's storage budget.
const Kind = "mam"

// Per-account cap (on top of store.AccountBytes for everything together).
// At the cap the oldest messages make room: an archive is a record of
// the past, and refusing today's messages to keep last year's would lose
// the wrong ones. The bench's 100,000-message archive fits.
var archiveLimit = store.Limit{Bytes: 64 << 20, Items: 100_000}

// evictPerMessage bounds how many old records one new message may push
// out, so that a write transaction stays short even for an account whose
// limit a newer build lowered (the rest goes at the next messages and at
// retention ticks).
const evictPerMessage = 64

// fillPercent is how full the archive's pages are left when they split.
const fillPercent = 0.9

func userPrefix(user string) []byte { return append(store.Key(user), 0) }

func recKey(user string, id uint64) []byte { return append(userPrefix(user), store.U64(id)...) }

// FormatID is the stanza-id form of an archive id.
func FormatID(id uint64) string {
	var b [16]byte
	return string(appendHexID(b[:0], id))
}

// appendHexID appends id's stanza-id form, 16 hex digits.
func appendHexID(b []byte, id uint64) []byte {
	const hex = "0123456789abcdef"
	for i := 60; i >= 0; i -= 4 {
		b = append(b, hex[id>>uint(i)&0xf])
	}
	return b
}

// ParseID reads a stanza-id back; anything else is not an id of ours.
func ParseID(s string) (uint64, bool) {
	if len(s) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 16, 64)
	return n, err == nil
}

func idTime(id uint64) time.Time { return time.UnixMicro(int64(id)).UTC() }

func timeID(t time.Time) uint64 {
	if t.UnixMicro() < 0 {
		return 0
	}
	return uint64(t.UnixMicro())
}

func encodeRecord(dir byte, peer string, xml []byte) []byte {
	v := make([]byte, 0, 2+binary.MaxVarintLen64+len(peer)+len(xml))
	v = append(v, recVersion, dir)
	v = binary.AppendUvarint(v, uint64(len(peer)))
	v = append(v, peer...)
	return append(v, xml...)
}

type record struct {
	id   uint64
	dir  byte
	peer string
	xml  []byte // nil for a merged record whose XML is in the journal (ref)
	// Where the XML was committed: the journal value's key and the
	// message's index in it (ref 0: nowhere but xml), and its length
	// (charged to the budget without reading the XML).
	ref  uint64
	idx  uint32
	xlen int
}

// xmlLen is the length of r's XML, read or not.
func (r record) xmlLen() int {
	if r.xml == nil && r.ref != 0 {
		return r.xlen
	}
	return len(r.xml)
}

var errBadRecord = errors.New("mam: undecodable archive record")

func decodeRecord(k, v []byte) (record, error) {
	if len(k) < 8 || len(v) < 3 || v[0] != recVersion {
		return record{}, errBadRecord
	}
	n, w := binary.Uvarint(v[2:])
	if w <= 0 || uint64(len(v)-2-w) < n {
		return record{}, errBadRecord
	}
	p := v[2+w:]
	return record{
		id:   binary.BigEndian.Uint64(k[len(k)-8:]),
		dir:  v[1],
		peer: string(p[:n]),
		xml:  p[n:],
	}, nil
}

// entry is one message to archive for one account.
type entry struct {
	user string
	dir  byte
	peer string // the other party's full JID
	el   *stream.Element
	xml  []byte // el as stored (archive fills it in)
}

// put stores e under id straight into user's segments, charged and
// evicting at the cap like merged records (the XEP-0227 import and the
// benchmarks fill archives this way, in transactions of their own).
func put(st *store.Store, tx *bolt.Tx, e entry, id uint64) error {
	b, err := tx.CreateBucketIfNotExists(bucketMsgs)
	if err != nil {
		return err
	}
	r := record{id: id, dir: e.dir, peer: e.peer, xml: e.xml}
	drop, err := charge(tx, e.user, []int64{recSize(r)})
	if err != nil {
		return err
	}
	if drop > 0 {
		return fmt.Errorf("%w: no room in the archive of %s", store.ErrQuota, e.user)
	}
	return storeRecords(b, e.user, []record{r}, nil)
}

// charge adds records of the given sizes (oldest first, not stored yet)
// to user's archive charge. Past the cap the oldest records make room:
// the stored ones first (at most evictPerMessage per record added), then
// the new ones' own oldest, whose number it returns: those are not to be
// stored. An error is a storage failure, never the quota.
//
// Records are charged when the journal is merged into the segments, not
// when they are journaled: a charge per account per commit rewrote that
// account's usage record, one more page of the usage bucket dirtied per
// account in every commit (half of what a commit wrote at 1,000 msg/s
// with 5,000 accounts). So the budget sees journaled records up to
// mergeDelay late; the RSM count adds them (view.count).
func charge(tx *bolt.Tx, user string, sizes []int64) (int, error) {
	var p store.Usage
	for _, s := range sizes {
		p.Bytes += s
		p.Items++
	}
	drop := 0
	evicted := int64(0)
	for {
		err := store.Charge(tx, user, Kind, p.Bytes, p.Items, archiveLimit)
		if err == nil {
			return drop, nil
		}
		if !errors.Is(err, store.ErrQuota) {
			return 0, err
		}
		// How much must go: over the archive's own limit, or over the
		// account's whole budget (other kinds fill it too); at least one.
		u, t := store.UsageOf(tx, user, Kind), store.UsageOf(tx, user, "")
		overItems, overBytes := int64(0), max(t.Bytes+p.Bytes-store.AccountBytes, 0)
		if archiveLimit.Items > 0 {
			overItems = max(u.Items+p.Items-archiveLimit.Items, 0)
		}
		if archiveLimit.Bytes > 0 {
			overBytes = max(overBytes, u.Bytes+p.Bytes-archiveLimit.Bytes)
		}
		if overItems == 0 && overBytes <= 0 {
			overItems = 1
		}
		n, size := 0, int64(0)
		if b := tx.Bucket(bucketMsgs); b != nil && evicted < evictPerMessage*int64(len(sizes)) {
			var err error
			n, size, err = trimFront(b, user, int(evictPerMessage*int64(len(sizes))-evicted), func(r record) bool {
				return overItems > 0 || overBytes > 0
			}, func(r record) {
				overItems--
				overBytes -= recSize(r)
			})
			if err != nil {
				return 0, err
			}
		}
		if n > 0 {
			evicted += int64(n)
			if err := store.Charge(tx, user, Kind, -size, -int64(n), store.Limit{}); err != nil {
				return 0, err
			}
			continue
		}
		// Nothing stored can go: the new ones' oldest do.
		if drop == len(sizes) {
			return drop, nil
		}
		for drop < len(sizes) && (overItems > 0 || overBytes > 0) {
			p.Bytes -= sizes[drop]
			p.Items--
			overItems--
			overBytes -= sizes[drop]
			drop++
		}
		if p.Items == 0 {
			return drop, nil
		}
	}
}

// query is a parsed MAM request on one account's archive.
type query struct {
	with       string // "" for anyone; a bare JID matches every resource
	withFull   bool
	start, end uint64 // ids bounds (0: none); end inclusive
	after      uint64 // RSM after / after-id (exclusive; 0: none)
	before     uint64 // RSM before / before-id (exclusive; 0: none)
	ids        []uint64
	last       bool // RSM <before/>: the page nearest the end
	max        int
	maxBytes   int
	filtered   bool // a form field narrows the set (with, start, end, after-id, before-id)
	rsmFrom    bool // RSM <after/> or <before>id</before>: a page inside the set
}

// view reads one account's archive in one transaction: its segments and
// its records still in the journal (journal.go), which the transaction
// sees in exactly one of the two places.
type view struct {
	tx   *bolt.Tx
	b    *bolt.Bucket // nil: nothing merged yet
	j    *bolt.Bucket // the journal (merged records' XML too)
	user string
	pfx  []byte
	jr   []record // journaled records, by id (loaded on first use)
	jrOK bool
	buf  []record
}

func newView(tx *bolt.Tx, user string) *view {
	return &view{tx: tx, b: tx.Bucket(bucketMsgs), j: tx.Bucket(bucketJournal), user: user, pfx: userPrefix(user)}
}

// withXML returns r with its XML (valid during the transaction), read
// from the journal value a merged record refers to; false if that is gone
// (an expired record that retention has not swept yet: as if swept).
func (v *view) withXML(r record) (record, bool) {
	if r.xml != nil || r.ref == 0 {
		return r, true
	}
	x, ok := journalXML(v.j, r.ref, r.idx)
	r.xml = x
	return r, ok
}

func (v *view) journal() []record {
	if !v.jrOK {
		v.jr, v.jrOK = journalOf(v.tx, v.user), true
	}
	return v.jr
}

// get returns the record id (valid during the transaction).
func (v *view) get(id uint64) (record, bool) {
	if v.b != nil {
		if k, recs, err := segAt(v.b, v.user, id); err == nil && k != nil {
			if i, ok := slices.BinarySearchFunc(recs, id, func(r record, id uint64) int { return cmpU64(r.id, id) }); ok {
				return recs[i], true
			}
		}
	}
	jr := v.journal()
	if i, ok := slices.BinarySearchFunc(jr, id, func(r record, id uint64) int { return cmpU64(r.id, id) }); ok {
		return jr[i], true
	}
	return record{}, false
}

func (v *view) exists(id uint64) bool {
	_, ok := v.get(id)
	return ok
}

// bounds returns the first and last id of the archive (0, 0 if empty).
func (v *view) bounds() (first, last uint64) {
	if v.b != nil {
		c := v.b.Cursor()
		for k, val := c.Seek(v.pfx); k != nil && bytes.HasPrefix(k, v.pfx); k, val = c.Next() {
			if recs, err := decodeSeg(k, val, v.buf[:0]); err == nil && len(recs) > 0 {
				first = recs[0].id
				break
			}
		}
		if _, recs, err := lastSeg(v.b, v.user); err == nil && len(recs) > 0 {
			last = recs[len(recs)-1].id
		}
	}
	if jr := v.journal(); len(jr) > 0 {
		if first == 0 || jr[0].id < first {
			first = jr[0].id
		}
		last = max(last, jr[len(jr)-1].id)
	}
	return first, last
}

// scan returns up to limit records with lo <= id <= hi that keep accepts,
// from the segments, oldest first (or newest first with back).
func (v *view) scan(lo, hi uint64, back bool, limit int, keep func(record) bool) []record {
	var out []record
	if v.b == nil || limit <= 0 {
		return out
	}
	ours := func(k []byte) bool { return k != nil && bytes.HasPrefix(k, v.pfx) && len(k) == len(v.pfx)+8 }
	c := v.b.Cursor()
	if !back {
		// The segment holding lo starts at or before it.
		want := recKey(v.user, lo)
		k, val := c.Seek(want)
		if k == nil || !bytes.Equal(k, want) {
			var pk, pv []byte
			if k == nil {
				pk, pv = c.Last()
			} else {
				pk, pv = c.Prev()
			}
			if ours(pk) {
				k, val = pk, pv
			} else {
				k, val = c.Seek(want)
			}
		}
		for ; k != nil && bytes.HasPrefix(k, v.pfx); k, val = c.Next() {
			if len(k) != len(v.pfx)+8 {
				continue
			}
			if binary.BigEndian.Uint64(k[len(v.pfx):]) > hi {
				break
			}
			recs, err := decodeSeg(k, val, v.buf[:0])
			v.buf = recs
			if err != nil {
				continue // skipped, never fatal to a query
			}
			for _, r := range recs {
				if r.id < lo {
					continue
				}
				if r.id > hi {
					return out
				}
				if keep(r) {
					out = append(out, r)
					if len(out) >= limit {
						return out
					}
				}
			}
		}
		return out
	}
	var k, val []byte
	if hi == ^uint64(0) {
		k, val = c.Seek(append(slices.Clone(v.pfx), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	} else {
		k, val = c.Seek(recKey(v.user, hi+1))
	}
	if k == nil {
		k, val = c.Last()
	} else {
		k, val = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, v.pfx); k, val = c.Prev() {
		if len(k) != len(v.pfx)+8 {
			continue
		}
		recs, err := decodeSeg(k, val, v.buf[:0])
		v.buf = recs
		if err != nil {
			continue
		}
		for i := len(recs) - 1; i >= 0; i-- {
			r := recs[i]
			if r.id > hi {
				continue
			}
			if r.id < lo {
				return out
			}
			if keep(r) {
				out = append(out, r)
				if len(out) >= limit {
					return out
				}
			}
		}
	}
	return out
}

// each calls fn with every record of the archive, oldest first.
func (v *view) each(fn func(record) error) error {
	jr := v.journal()
	if v.b != nil {
		c := v.b.Cursor()
		for k, val := c.Seek(v.pfx); k != nil && bytes.HasPrefix(k, v.pfx); k, val = c.Next() {
			if len(k) != len(v.pfx)+8 {
				continue
			}
			recs, err := decodeSeg(k, val, v.buf[:0])
			v.buf = recs
			if err != nil {
				return err
			}
			for _, r := range recs {
				for len(jr) > 0 && jr[0].id < r.id {
					if err := fn(jr[0]); err != nil {
						return err
					}
					jr = jr[1:]
				}
				r, ok := v.withXML(r)
				if !ok {
					continue
				}
				if err := fn(r); err != nil {
					return err
				}
			}
		}
	}
	for _, r := range jr {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// page reads one page of user's archive: up to q.max records (and about
// q.maxBytes of XML) in archive order, and whether it reached the end of
// what the query selects in the direction of reading.
func page(tx *bolt.Tx, user string, q query) ([]record, bool, error) {
	return newView(tx, user).page(q)
}

func (v *view) page(q query) ([]record, bool, error) {
	if q.ids != nil {
		return v.byIDs(q)
	}
	lo, hi := q.start, ^uint64(0) // inclusive bounds on ids
	if q.after > 0 && q.after+1 > lo {
		lo = q.after + 1
	}
	if q.end > 0 {
		hi = q.end
	}
	if q.before > 0 && q.before-1 < hi {
		hi = q.before - 1
	}
	if lo > hi {
		return nil, true, nil
	}
	keep := func(r record) bool { return q.with == "" || withMatches(r.peer, q.with, q.withFull) }
	// Up to one more than a page from each place: enough to fill the
	// page from both and to know whether more exist.
	limit := q.max + 1
	stored := v.scan(lo, hi, q.last, limit, keep)
	// The journal's in the same direction, up to limit.
	var journaled []record
	jr := v.journal()
	from, _ := slices.BinarySearchFunc(jr, lo, func(r record, id uint64) int { return cmpU64(r.id, id) })
	if !q.last {
		for _, r := range jr[from:] {
			if r.id > hi || len(journaled) >= limit {
				break
			}
			if keep(r) {
				journaled = append(journaled, r)
			}
		}
	} else {
		for i := len(jr) - 1; i >= from && len(journaled) < limit; i-- {
			if r := jr[i]; r.id <= hi && keep(r) {
				journaled = append(journaled, r)
			}
		}
	}
	before := func(a, b record) bool { return a.id < b.id != q.last }
	var out []record
	size := 0
	complete := true
	for len(stored) > 0 || len(journaled) > 0 {
		var r record
		switch {
		case len(journaled) == 0 || len(stored) > 0 && before(stored[0], journaled[0]):
			r, stored = stored[0], stored[1:]
		case len(stored) > 0 && stored[0].id == journaled[0].id:
			r, stored, journaled = stored[0], stored[1:], journaled[1:]
		default:
			r, journaled = journaled[0], journaled[1:]
		}
		r, ok := v.withXML(r)
		if !ok {
			continue
		}
		if q.max == 0 || len(out) > 0 && (len(out) >= q.max || size+len(r.xml) > q.maxBytes) {
			complete = false // one more exists
			break
		}
		r.xml = slices.Clone(r.xml)
		out = append(out, r)
		size += len(r.xml)
	}
	if q.last {
		slices.Reverse(out)
	}
	return out, complete, nil
}

// byIDs answers an "ids" query (urn:xmpp:mam:2#extended): exactly those
// messages, in archive order; an id that is not in the archive makes the
// whole query item-not-found (XEP-0313 §4.1.6).
func (v *view) byIDs(q query) ([]record, bool, error) {
	ids := slices.Clone(q.ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var out []record
	for _, id := range ids {
		r, ok := v.get(id)
		if ok {
			r, ok = v.withXML(r)
		}
		if !ok {
			return nil, false, errUnknownID
		}
		r.xml = slices.Clone(r.xml)
		out = append(out, r)
	}
	return out, true, nil
}

var errUnknownID = errors.New("mam: no such message in the archive")

// exists reports whether id is in user's archive.
func exists(tx *bolt.Tx, user string, id uint64) bool {
	return newView(tx, user).exists(id)
}

// withMatches applies XEP-0313 §4.1.1: a bare JID matches every resource
// of it, a full JID only itself, a domain only the domain.
func withMatches(peer, with string, full bool) bool {
	if full {
		return peer == with
	}
	bare := peer
	if i := bytes.IndexByte([]byte(peer), '/'); i >= 0 {
		bare = peer[:i]
	}
	return bare == with
}

// bounds returns the first and last id of user's archive (0, 0 if empty).
func bounds(tx *bolt.Tx, user string) (first, last uint64) {
	return newView(tx, user).bounds()
}
