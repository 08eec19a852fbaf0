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
func FormatID(id uint64) string { return fmt.Sprintf("%016x", id) }

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
	xml  []byte
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

// put archives e in tx under id. In a transaction of the store's commit
// queue the charge to the account's budget is summed and made once per
// account when the batch ends (flushCharges); elsewhere it is made here.
// At the per-account cap the oldest records make room; if the account's
// whole budget is still exceeded (other kinds fill it), the error is
// store.ErrQuota.
func put(st *store.Store, tx *bolt.Tx, e entry, id uint64) error {
	b, err := tx.CreateBucketIfNotExists(bucketMsgs)
	if err != nil {
		return err
	}
	// Each account's records are appended at the end of its range: the
	// default split (half-full pages) would leave every page of the
	// archive half empty, doubling what each commit writes to the card.
	b.FillPercent = fillPercent
	v := encodeRecord(e.dir, e.peer, e.xml)
	if c, ok := st.BatchLocal(tx, chargesKey{}, newCharges, flushCharges); ok {
		p := c.(charges)[e.user]
		if p == nil {
			p = &pending{minID: id}
			c.(charges)[e.user] = p
		}
		p.Bytes += int64(len(v))
		p.Items++
		p.minID = min(p.minID, id)
	} else if err := charge(tx, b, e.user, &pending{Usage: store.Usage{Bytes: int64(len(v)), Items: 1}, minID: ^uint64(0)}); err != nil {
		return err
	}
	return b.Put(recKey(e.user, id), v)
}

type chargesKey struct{}

// pending is what one batch adds to an account's archive: records from
// minID on are the batch's own.
type pending struct {
	store.Usage
	minID uint64
}

// charges is what one batch adds to each account's archive.
type charges map[string]*pending

func newCharges() any { return charges{} }

func flushCharges(tx *bolt.Tx, v any) error {
	c := v.(charges)
	users := make([]string, 0, len(c))
	for u := range c {
		users = append(users, u)
	}
	slices.Sort(users) // the same order whichever the map's: reproducible
	b := tx.Bucket(bucketMsgs)
	for _, u := range users {
		if err := charge(tx, b, u, c[u]); err != nil {
			return err
		}
	}
	return nil
}

// charge adds p to user's archive charge. While that would pass the cap
// the oldest record goes (at most evictPerMessage per record added): one
// charged before gives its charge back, one of this batch (id >= minID)
// is simply not charged.
func charge(tx *bolt.Tx, b *bolt.Bucket, user string, p *pending) error {
	pfx := userPrefix(user)
	for tries := int64(0); ; tries++ {
		err := store.Charge(tx, user, Kind, p.Bytes, p.Items, archiveLimit)
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrQuota) || tries >= evictPerMessage*max(p.Items, 1) {
			return err
		}
		c := b.Cursor()
		k, v := c.Seek(pfx)
		if k == nil || !bytes.HasPrefix(k, pfx) || len(k) != len(pfx)+8 {
			return err // nothing of ours left to give back
		}
		size, id := int64(len(v)), binary.BigEndian.Uint64(k[len(pfx):])
		if err := c.Delete(); err != nil {
			return err
		}
		if id >= p.minID {
			p.Bytes -= size
			p.Items--
		} else if err := store.Charge(tx, user, Kind, -size, -1, store.Limit{}); err != nil {
			return err
		}
	}
}

// evictOldest deletes up to n of user's oldest records, charging them
// back, and reports how many went.
func evictOldest(tx *bolt.Tx, b *bolt.Bucket, user string, n int) (int, error) {
	p := userPrefix(user)
	var keys [][]byte
	var size int64
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && len(keys) < n; k, v = c.Next() {
		keys = append(keys, slices.Clone(k))
		size += int64(len(v))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	return len(keys), store.Charge(tx, user, Kind, -size, -int64(len(keys)), store.Limit{})
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
}

// page reads one page of user's archive: up to q.max records (and about
// q.maxBytes of XML) in archive order, and whether it reached the end of
// what the query selects in the direction of reading.
func page(tx *bolt.Tx, user string, q query) ([]record, bool, error) {
	b := tx.Bucket(bucketMsgs)
	if b == nil {
		return nil, true, nil
	}
	if q.ids != nil {
		return byIDs(b, user, q)
	}
	p := userPrefix(user)
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
	var out []record
	size := 0
	match := func(k, v []byte) (bool, error) {
		r, err := decodeRecord(k, v)
		if err != nil {
			return false, nil // skipped, never fatal to a query
		}
		if q.with != "" && !withMatches(r.peer, q.with, q.withFull) {
			return false, nil
		}
		if len(out) > 0 && (len(out) >= q.max || size+len(r.xml) > q.maxBytes) {
			return true, nil // one more exists: not complete
		}
		if q.max == 0 {
			return true, nil
		}
		r.xml = slices.Clone(r.xml)
		out = append(out, r)
		size += len(r.xml)
		return false, nil
	}
	c := b.Cursor()
	if lo > hi {
		return nil, true, nil
	}
	if !q.last {
		for k, v := c.Seek(recKey(user, lo)); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if binary.BigEndian.Uint64(k[len(p):]) > hi {
				break
			}
			if more, err := match(k, v); err != nil || more {
				return out, false, err
			}
		}
		return out, true, nil
	}
	var k, v []byte
	if hi == ^uint64(0) {
		k, v = c.Seek(append(slices.Clone(p), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	} else {
		k, v = c.Seek(recKey(user, hi+1))
	}
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	complete := true
	for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Prev() {
		if binary.BigEndian.Uint64(k[len(p):]) < lo {
			break
		}
		more, err := match(k, v)
		if err != nil {
			return nil, false, err
		}
		if more {
			complete = false
			break
		}
	}
	slices.Reverse(out)
	return out, complete, nil
}

// byIDs answers an "ids" query (urn:xmpp:mam:2#extended): exactly those
// messages, in archive order; an id that is not in the archive makes the
// whole query item-not-found (XEP-0313 §4.1.6).
func byIDs(b *bolt.Bucket, user string, q query) ([]record, bool, error) {
	ids := slices.Clone(q.ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var out []record
	for _, id := range ids {
		k := recKey(user, id)
		v := b.Get(k)
		if v == nil {
			return nil, false, errUnknownID
		}
		r, err := decodeRecord(k, v)
		if err != nil {
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
	b := tx.Bucket(bucketMsgs)
	return b != nil && b.Get(recKey(user, id)) != nil
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
	b := tx.Bucket(bucketMsgs)
	if b == nil {
		return 0, 0
	}
	p := userPrefix(user)
	c := b.Cursor()
	if k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p) {
		first = binary.BigEndian.Uint64(k[len(p):])
	}
	k, _ := c.Seek(append(slices.Clone(p), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if k != nil && bytes.HasPrefix(k, p) {
		last = binary.BigEndian.Uint64(k[len(p):])
	}
	return first, last
}
