package mam

import (
	"bytes"
	"encoding/binary"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Segments: an account's archive is stored as runs of consecutive
// records, one bbolt value per run, keyed user \0 id-of-its-first-record.
//
// Why: one bbolt entry per record cost a B+tree insert per record per
// party (cursor seek from the root, inode insert, node split and spill
// at commit) and its garbage; at saturation that was a third of the
// server's CPU with the archive on, and the allocations it made fed the
// garbage collector most of the rest (issue 13: 4.7× the CPU per message
// of the server without the archive). Records reach the archive from the
// journal (journal.go) a few thousand at a time, sorted per account, so a
// merge appends whole segments: one Put per ~segMaxBytes of messages.
//
// A value is a segment or, from databases written before segments, a
// single record (recVersion, see encodeRecord) whose id is the key's.
// Segments of version 2 hold their records' XML (id 8 bytes big-endian,
// direction byte, uvarint length + peer, uvarint length + XML). Version 3
// (segVersion) has a kind byte after the peer: 0, the XML follows as in
// version 2; 1, the XML stays in the journal value it was committed in
// (uvarint journal key, uvarint index of the message in that value,
// uvarint length of its XML), see journal.go: the merge writes
// ~50 bytes per record instead of copying the XML for each party; 2, the
// same with the previous record's peer (~20 bytes). All read alike.
const (
	segVersion2 = 2
	segVersion  = 3
	kindInline  = 0
	kindRef     = 1
	// A reference whose peer is the previous record's (its peer length
	// is 0): merged runs of one conversation.
	kindRefSamePeer = 2
	// Two segments and their keys fit one 4 KiB page at fillPercent:
	// bbolt never splits a node below two entries a page, and a node of
	// more than a page is written from a fresh multi-page buffer (where
	// a single page comes from a pool) — at 3,800 bytes a segment those
	// buffers were a fifth of the server's allocations at saturation.
	segMaxBytes   = 1780
	segMaxRecords = 64 // bounds the rewrite of a segment that loses its front
)

// recSize is what one record is charged to the account's budget: its size
// as a single-record value (encodeRecord), whatever it is stored in, so
// that charges made before segments stay right.
func recSize(r record) int64 {
	return int64(2 + uvarintLen(uint64(len(r.peer))) + len(r.peer) + r.xmlLen())
}

func uvarintLen(n uint64) int {
	l := 1
	for n >= 0x80 {
		n >>= 7
		l++
	}
	return l
}

// samePeer reports whether r is written as a reference whose peer is
// prev's (kindRefSamePeer): in a one-to-one conversation every record of
// a segment has the same peer, ~30 of a merged record's ~50 bytes.
func samePeer(r record, prev *record) bool {
	return r.ref != 0 && prev != nil && prev.peer == r.peer
}

// segRecordLen is the size of r written after prev (nil: first of what is
// written).
func segRecordLen(r record, prev *record) int {
	if samePeer(r, prev) {
		return 11 + uvarintLen(r.ref) + uvarintLen(uint64(r.idx)) + uvarintLen(uint64(r.xmlLen()))
	}
	n := 10 + uvarintLen(uint64(len(r.peer))) + len(r.peer)
	if r.ref != 0 {
		return n + uvarintLen(r.ref) + uvarintLen(uint64(r.idx)) + uvarintLen(uint64(r.xmlLen()))
	}
	return n + uvarintLen(uint64(len(r.xml))) + len(r.xml)
}

// appendSegRecord appends r in segVersion's form: a reference to its
// journal value when it has one (a merged record; with no peer when it is
// prev's, the record written just before it), else its XML.
func appendSegRecord(v []byte, r record, prev *record) []byte {
	v = binary.BigEndian.AppendUint64(v, r.id)
	v = append(v, r.dir)
	if samePeer(r, prev) {
		v = append(v, 0, kindRefSamePeer)
		v = binary.AppendUvarint(v, r.ref)
		v = binary.AppendUvarint(v, uint64(r.idx))
		return binary.AppendUvarint(v, uint64(r.xmlLen()))
	}
	v = binary.AppendUvarint(v, uint64(len(r.peer)))
	v = append(v, r.peer...)
	if r.ref != 0 {
		v = append(v, kindRef)
		v = binary.AppendUvarint(v, r.ref)
		v = binary.AppendUvarint(v, uint64(r.idx))
		return binary.AppendUvarint(v, uint64(r.xmlLen()))
	}
	v = append(v, kindInline)
	v = binary.AppendUvarint(v, uint64(len(r.xml)))
	return append(v, r.xml...)
}

// encodeSeg encodes recs as one segment, in memory from ar (nil: the heap).
func encodeSeg(recs []record, ar *arena) []byte {
	n := segSize(recs)
	var v []byte
	if ar != nil {
		v = ar.alloc(n)
	} else {
		v = make([]byte, 0, n)
	}
	v = append(v, segVersion)
	for i, r := range recs {
		v = appendSegRecord(v, r, prevOf(recs, i))
	}
	return v
}

// prevOf is the record before recs[i], nil for the first.
func prevOf(recs []record, i int) *record {
	if i == 0 {
		return nil
	}
	return &recs[i-1]
}

// decodeSeg reads the records of one stored value, oldest first. The
// records' peer and XML point into v (valid only during the transaction).
func decodeSeg(k, v []byte, out []record) ([]record, error) {
	err := walkSeg(k, v, true, func(r record) { out = append(out, r) })
	return out, err
}

// walkSeg calls fn with the records of one stored value, oldest first,
// their peers left empty unless peers is set.
func walkSeg(k, v []byte, peers bool, fn func(record)) error {
	if len(v) > 0 && v[0] == recVersion {
		r, err := decodeRecord(k, v)
		if err != nil {
			return err
		}
		fn(r)
		return nil
	}
	if len(v) == 0 || v[0] != segVersion && v[0] != segVersion2 {
		return errBadRecord
	}
	v3 := v[0] == segVersion
	var prevPeer string
	first := true
	for p := v[1:]; len(p) > 0; {
		if len(p) < 10 {
			return errBadRecord
		}
		r := record{id: binary.BigEndian.Uint64(p), dir: p[8]}
		p = p[9:]
		n, w := binary.Uvarint(p)
		if w <= 0 || uint64(len(p)-w) < n {
			return errBadRecord
		}
		peer := p[w : w+int(n)]
		p = p[w+int(n):]
		kind := byte(kindInline)
		if v3 {
			if len(p) == 0 {
				return errBadRecord
			}
			kind, p = p[0], p[1:]
		}
		if kind == kindRefSamePeer {
			if first || n != 0 {
				return errBadRecord
			}
		} else if peers && (first || string(peer) != prevPeer) {
			prevPeer = string(peer)
		}
		first = false
		if peers {
			r.peer = prevPeer // one string for a run of the same peer
		}
		if kind == kindRef || kind == kindRefSamePeer {
			var vals [3]uint64
			for i := range vals {
				x, w := binary.Uvarint(p)
				if w <= 0 {
					return errBadRecord
				}
				vals[i], p = x, p[w:]
			}
			if vals[0] == 0 || vals[1] > 1<<20 || vals[2] > 1<<30 {
				return errBadRecord
			}
			r.ref, r.idx, r.xlen = vals[0], uint32(vals[1]), int(vals[2])
			fn(r)
			continue
		}
		if kind != kindInline {
			return errBadRecord
		}
		n, w = binary.Uvarint(p)
		if w <= 0 || uint64(len(p)-w) < n {
			return errBadRecord
		}
		r.xml = p[w : w+int(n) : w+int(n)]
		p = p[w+int(n):]
		fn(r)
	}
	return nil
}

// segSize is the stored size of a segment of recs.
func segSize(recs []record) int {
	n := 1
	for i, r := range recs {
		n += segRecordLen(r, prevOf(recs, i))
	}
	return n
}

// lastSeg returns the key and records of user's newest stored value (nil
// if it has none).
func lastSeg(b *bolt.Bucket, user string) ([]byte, []record, error) {
	k, v := newestSeg(b, user)
	if k == nil {
		return nil, nil, nil
	}
	recs, err := decodeSeg(k, v, nil)
	return slices.Clone(k), recs, err
}

// newestSeg is the key and value of user's newest stored value (nil if
// it has none), valid for the transaction.
func newestSeg(b *bolt.Bucket, user string) (k, v []byte) {
	p := userPrefix(user)
	c := b.Cursor()
	k, v = c.Seek(append(p, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, p) || len(k) != len(p)+8 {
		return nil, nil
	}
	return k, v
}

// lastSegTail is lastSeg for the merge: the key, number of records and
// newest id of user's newest stored value, without making its records
// (their peers' strings were a tenth of what a merge allocated).
func lastSegTail(b *bolt.Bucket, user string) ([]byte, int, uint64, error) {
	k, v := newestSeg(b, user)
	if k == nil {
		return nil, 0, 0, nil
	}
	n, last := 0, uint64(0)
	err := walkSeg(k, v, false, func(r record) { n, last = n+1, r.id })
	if err != nil || n == 0 {
		return nil, 0, 0, err
	}
	return slices.Clone(k), n, last, nil
}

// segAt returns the key and records of the stored value of user that
// would hold id (the last one starting at or before it), nil if none.
func segAt(b *bolt.Bucket, user string, id uint64) ([]byte, []record, error) {
	p := userPrefix(user)
	c := b.Cursor()
	want := recKey(user, id)
	k, v := c.Seek(want)
	if k == nil || !bytes.Equal(k, want) {
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
	}
	if k == nil || !bytes.HasPrefix(k, p) || len(k) != len(p)+8 {
		return nil, nil, nil
	}
	recs, err := decodeSeg(k, v, nil)
	return slices.Clone(k), recs, err
}

// storeRecords writes recs (sorted by id, ids new to the archive) into
// user's segments: appended to the newest segment while it has room, then
// in new segments; a record older than the newest stored one (two
// commits of one account finishing out of order) is inserted into the
// segment it belongs to. New values are cut from ar (nil: the heap).
func storeRecords(b *bolt.Bucket, user string, recs []record, ar *arena) error {
	b.FillPercent = fillPercent
	lk, nLast, lastID, err := lastSegTail(b, user)
	if err != nil {
		nLast, lastID = 0, 0 // an undecodable value is left as it is; new ones follow it
		lk = nil
	}
	i := 0
	for ; i < len(recs) && recs[i].id <= lastID; i++ {
		if err := insertRecord(b, user, recs[i]); err != nil {
			return err
		}
	}
	recs = recs[i:]
	if len(recs) == 0 {
		return nil
	}
	// Extend the newest segment (a single record from before segments, or
	// a version 2 segment, is left alone: rewriting it gains nothing).
	if lk != nil && nLast > 0 && nLast < segMaxRecords {
		if v := b.Get(lk); len(v) > 0 && v[0] == segVersion {
			size := len(v)
			n := 0
			for n < len(recs) && nLast+n < segMaxRecords && size+segRecordLen(recs[n], prevOf(recs, n)) <= segMaxBytes {
				size += segRecordLen(recs[n], prevOf(recs, n))
				n++
			}
			if n > 0 {
				var nv []byte
				if ar != nil {
					nv = ar.alloc(size)
				} else {
					nv = make([]byte, 0, size)
				}
				nv = append(nv, v...)
				for i, r := range recs[:n] {
					nv = appendSegRecord(nv, r, prevOf(recs, i))
				}
				if err := b.Put(lk, nv); err != nil {
					return err
				}
				recs = recs[n:]
			}
		}
	}
	for len(recs) > 0 {
		size, n := 1, 0
		for n < len(recs) && n < segMaxRecords && (n == 0 || size+segRecordLen(recs[n], prevOf(recs, n)) <= segMaxBytes) {
			size += segRecordLen(recs[n], prevOf(recs, n))
			n++
		}
		if err := b.Put(recKey(user, recs[0].id), encodeSeg(recs[:n], ar)); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// insertRecord puts r into the segment it belongs to (or a new one before
// every other of user's); an id already stored is left as it is.
func insertRecord(b *bolt.Bucket, user string, r record) error {
	k, recs, err := segAt(b, user, r.id)
	if err != nil || k == nil {
		return b.Put(recKey(user, r.id), encodeSeg([]record{r}, nil))
	}
	i, found := slices.BinarySearchFunc(recs, r.id, func(x record, id uint64) int { return cmpU64(x.id, id) })
	if found {
		return nil
	}
	recs = slices.Insert(recs, i, r)
	return b.Put(k, encodeSeg(recs, nil))
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// trimFront deletes user's oldest records while drop says so, at most n
// of them, and reports what went; gone (if not nil) is called with each.
// Segments that lose every record are deleted; one that loses its front
// is written again under its new first id.
func trimFront(b *bolt.Bucket, user string, n int, drop func(r record) bool, gone ...func(r record)) (int, int64, error) {
	p := userPrefix(user)
	type rewrite struct {
		old  []byte
		rest []record
	}
	var dels [][]byte
	var rw *rewrite
	count, size := 0, int64(0)
	c := b.Cursor()
scan:
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && count < n; k, v = c.Next() {
		if len(k) != len(p)+8 {
			continue
		}
		recs, err := decodeSeg(k, v, nil)
		if err != nil {
			dels = append(dels, slices.Clone(k)) // undecodable: nothing to charge back
			continue
		}
		for i, r := range recs {
			if count >= n || !drop(r) {
				if i > 0 {
					rw = &rewrite{old: slices.Clone(k), rest: cloneRecords(recs[i:])}
				}
				break scan
			}
			count++
			size += recSize(r)
			for _, g := range gone {
				g(r)
			}
		}
		dels = append(dels, slices.Clone(k))
	}
	for _, k := range dels {
		if err := b.Delete(k); err != nil {
			return 0, 0, err
		}
	}
	if rw != nil {
		if err := b.Delete(rw.old); err != nil {
			return 0, 0, err
		}
		if err := b.Put(recKey(user, rw.rest[0].id), encodeSeg(rw.rest, nil)); err != nil {
			return 0, 0, err
		}
	}
	return count, size, nil
}

// cloneRecords copies recs out of the transaction's memory.
func cloneRecords(recs []record) []record {
	out := make([]record, len(recs))
	for i, r := range recs {
		r.xml = slices.Clone(r.xml)
		out[i] = r
	}
	return out
}

// arena hands out byte slices from chunks it keeps and reuses: the
// journal's values and the merge's segments are handed to bbolt, which
// keeps them only until its commit, so one goroutine that writes one
// transaction after the other can reuse the same memory for the next.
// (Fresh slices for every value were a third of what the server allocated
// at saturation, and garbage collection at GOGC=25 costs in proportion.)
type arena struct {
	chunks [][]byte
	cur    int // chunk being cut
	off    int // bytes cut from it
}

const arenaChunk = 64 << 10

// alloc returns an empty slice with capacity n.
func (a *arena) alloc(n int) []byte {
	if n > arenaChunk/4 {
		return make([]byte, 0, n)
	}
	for {
		if a.cur == len(a.chunks) {
			a.chunks = append(a.chunks, make([]byte, arenaChunk))
		}
		if a.off+n <= arenaChunk {
			s := a.chunks[a.cur][a.off : a.off : a.off+n]
			a.off += n
			return s
		}
		a.cur++
		a.off = 0
	}
}

// reset makes every chunk free again, keeping as many as the last round
// used (under load they are reused; when the load drops, so does the
// memory kept).
func (a *arena) reset() {
	keep := a.cur + 1
	if len(a.chunks) > keep {
		clear(a.chunks[keep:])
		a.chunks = a.chunks[:keep]
	}
	a.cur, a.off = 0, 0
}
