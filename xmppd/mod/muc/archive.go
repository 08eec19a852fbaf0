package muc

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// The room archive: every groupchat message with a body or subject, as it
// was fanned out (from room/nick, with occupant-id), under a sequence
// number. Its stanza-id is the sequence number in hex, which the MAM
// queries' RSM after/before take back. The room's arcMeta moves in the
// same transaction, and the oldest records go when a room passes
// ArchiveItems or ArchiveBytes, so a room's archive is bounded
// (and a member's rooms are bounded by RoomsPerAccount).

func stanzaID(seq uint64) string { return fmt.Sprintf("%016x", seq) }

func parseStanzaID(s string) (uint64, bool) {
	if len(s) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 16, 64)
	return n, err == nil
}

// archive commits el (r locked, its outbox empty) at once and returns its
// stanza-id. Room messages go through postMessage (fanout.go), which
// shares commits; this is for callers that need the id before going on
// (tests of the archive's bounds).
func (m *Service) archive(r *room, el *stream.Element) (string, error) {
	seq := r.st.arc.Seq + 1
	var next arcMeta
	rec := encodeRecord(m.o.Now().UnixNano(), el.String())
	if err := m.srv.Store.Batch(m.appendTx(r.name, seq, rec, &next)); err != nil {
		return "", err
	}
	r.st.arc = next
	r.ob.fanned = seq
	return stanzaID(seq), nil
}

func u64(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

// record is one archived message.
type record struct {
	seq  uint64
	when time.Time
	el   *stream.Element
}

// read returns up to max records of r's archive in order, starting after
// `after` (0: from the start) and before `before` (0: no bound); last
// picks the newest max instead of the oldest. It is called without r's
// mutex: bbolt's read transaction is its own snapshot.
func (m *Service) read(name string, after, before uint64, start, end time.Time, max int, last bool) ([]record, bool, error) {
	var out []record
	complete := true
	err := m.srv.Store.View(func(tx *bolt.Tx) error {
		ab := tx.Bucket(bucketArchive).Bucket([]byte(name))
		if ab == nil {
			return nil
		}
		c := ab.Cursor()
		ok := func(k, v []byte) (record, bool) {
			seq := u64(k)
			n, xml, good := decodeRecord(v)
			if !good {
				return record{}, false
			}
			when := time.Unix(0, n).UTC()
			if !start.IsZero() && when.Before(start) || !end.IsZero() && when.After(end) {
				return record{}, false
			}
			el, err := stream.ParseElement(xml)
			if err != nil {
				return record{}, false
			}
			return record{seq, when, el}, true
		}
		if !last {
			k, v := c.First()
			if after > 0 {
				k, v = c.Seek(store.U64(after + 1))
			}
			for ; k != nil; k, v = c.Next() {
				if before > 0 && u64(k) >= before {
					break
				}
				if rec, good := ok(k, v); good {
					if len(out) == max {
						complete = false
						break
					}
					out = append(out, rec)
				}
			}
			return nil
		}
		var k, v []byte
		if before > 0 {
			k, v = c.Seek(store.U64(before))
			k, v = c.Prev()
		} else {
			k, v = c.Last()
		}
		for ; k != nil; k, v = c.Prev() {
			if after > 0 && u64(k) <= after {
				break
			}
			if rec, good := ok(k, v); good {
				if len(out) == max {
					complete = false
					break
				}
				out = append(out, rec)
			}
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		return nil
	})
	return out, complete, err
}

// sendHistory sends the newest archived messages to a joining client
// (§7.2.14), limited by the room's MaxHistory and the join's <history/>
// (maxstanzas, maxchars, seconds, since).
func (m *Service) sendHistory(r *room, to string, x *stream.Element) {
	max := r.st.Config.MaxHistory
	maxChars := -1
	var since time.Time
	if x != nil {
		if h := x.Child(NS, "history"); h != nil {
			if v, err := strconv.Atoi(h.Get("maxstanzas")); err == nil && v >= 0 {
				max = min(max, v)
			}
			if v, err := strconv.Atoi(h.Get("maxchars")); err == nil && v >= 0 {
				maxChars = v
			}
			if v, err := strconv.Atoi(h.Get("seconds")); err == nil && v >= 0 {
				since = m.o.Now().Add(-time.Duration(v) * time.Second)
			}
			if t, err := time.Parse(time.RFC3339, h.Get("since")); err == nil && t.After(since) {
				since = t
			}
		}
	}
	if max <= 0 || maxChars == 0 {
		return
	}
	recs, _, err := m.read(r.name, 0, 0, since, time.Time{}, max, true)
	if err != nil {
		m.srv.Log.Error("muc: history", "room", r.name, "err", err)
		return
	}
	if maxChars > 0 {
		// The newest that fit in maxChars, counted as XEP-0045 does: the
		// stanzas' XML.
		total, i := 0, len(recs)
		for i > 0 && total+len(recs[i-1].el.String()) <= maxChars {
			total += len(recs[i-1].el.String())
			i--
		}
		recs = recs[i:]
	}
	for _, rec := range recs {
		el := rec.el
		if rec.seq > r.ob.fanned {
			// Committed, not fanned out yet (fanout.go): the joiner,
			// an occupant now, receives it live.
			continue
		}
		if el.Child(stream.NSClient, "subject") != nil && el.Child(stream.NSClient, "body") == nil {
			continue // the current subject comes after the history
		}
		if el.Child(nsRetract, "retracted") != nil {
			continue // a tombstone (moderate.go); its retraction notice follows
		}
		el.Set("to", to)
		el.Add(stream.New(nsSID, "stanza-id", "id", stanzaID(rec.seq), "by", m.roomJID(r.name)))
		el.Add(stream.New(nsDelay, "delay", "stamp", rec.when.Format(time.RFC3339Nano), "from", m.roomJID(r.name)))
		m.send(el)
	}
}

// mayRead: who may query the archive — occupants, and members of a
// members-only room; anyone not banned in an open room.
func (r *room) mayRead(from string, isOcc bool) bool {
	a := r.aff(from)
	if a == "outcast" {
		return false
	}
	if isOcc {
		return true
	}
	return !r.st.Config.MembersOnly || affRank(a) >= affRank("member")
}

func (m *Service) mamForm(st *server.Stanza) (*stream.Element, error) {
	if st.To.Localpart() == "" || st.To.Resourcepart() != "" {
		return nil, server.ErrItemNotFound
	}
	q := stream.New(nsMAM, "query")
	f := newForm("form", nsMAM)
	f.field("start", "text-single")
	f.field("end", "text-single")
	q.Add(f.el)
	return q, nil
}

// mamQuery answers XEP-0313 on a room: the messages go to the asker, then
// the result with the RSM set.
func (m *Service) mamQuery(st *server.Stanza) (*stream.Element, error) {
	if st.To.Localpart() == "" || st.To.Resourcepart() != "" {
		return nil, server.ErrItemNotFound
	}
	r := m.lookup(st.To.Localpart())
	if r == nil {
		return nil, server.ErrItemNotFound
	}
	r.mu.Lock()
	allowed := !r.gone && r.mayRead(bareOf(st.From), r.occupantOf(st.From) != nil)
	r.mu.Unlock()
	if !allowed {
		return nil, withText(errForbidden, "not a member of this room")
	}
	q := st.El.FirstChild()
	var start, end time.Time
	if x := q.Child(nsData, "x"); x != nil {
		vals, ok := formValues(x, nsMAM)
		if !ok {
			return nil, server.ErrBadRequest
		}
		for k, v := range vals {
			switch k {
			case "FORM_TYPE":
			case "start", "end":
				if len(v) != 1 {
					return nil, server.ErrBadRequest
				}
				t, err := time.Parse(time.RFC3339, strings.TrimSpace(v[0]))
				if err != nil {
					return nil, withText(server.ErrBadRequest, k+": not a date")
				}
				if k == "start" {
					start = t
				} else {
					end = t
				}
			case "with":
				// A room's archive is everyone's; filtering by occupant is
				// not offered.
				return nil, server.ErrFeatureNotImpl
			default:
				return nil, withText(server.ErrBadRequest, "unknown field "+k)
			}
		}
	}
	max, last := 50, false
	var after, before uint64
	if set := q.Child(nsRSM, "set"); set != nil {
		if v := set.Child(nsRSM, "max"); v != nil {
			n, err := strconv.Atoi(strings.TrimSpace(v.Text()))
			if err != nil || n < 0 {
				return nil, server.ErrBadRequest
			}
			max = min(n, 100)
		}
		if v := set.Child(nsRSM, "after"); v != nil {
			n, ok := parseStanzaID(strings.TrimSpace(v.Text()))
			if !ok {
				return nil, server.ErrItemNotFound
			}
			after = n
		}
		if v := set.Child(nsRSM, "before"); v != nil {
			last = true
			if t := strings.TrimSpace(v.Text()); t != "" {
				n, ok := parseStanzaID(t)
				if !ok {
					return nil, server.ErrItemNotFound
				}
				before = n
			}
		}
	}
	recs, complete, err := m.read(r.name, after, before, start, end, max, last)
	if err != nil {
		return nil, err
	}
	roomJID := m.roomJID(r.name)
	for _, rec := range recs {
		msg := stream.New(stream.NSClient, "message", "from", roomJID, "to", st.From.String())
		res := stream.New(nsMAM, "result", "id", stanzaID(rec.seq))
		res.Set("queryid", q.Get("queryid"))
		fw := stream.New(nsForward, "forwarded")
		fw.Add(stream.New(nsDelay, "delay", "stamp", rec.when.Format(time.RFC3339Nano)))
		rec.el.Set("to", "")
		rec.el.Add(stream.New(nsSID, "stanza-id", "id", stanzaID(rec.seq), "by", roomJID))
		fw.Add(rec.el)
		res.Add(fw)
		msg.Add(res)
		m.send(msg)
	}
	fin := stream.New(nsMAM, "fin")
	if complete {
		fin.Set("complete", "true")
	}
	set := stream.New(nsRSM, "set")
	if len(recs) > 0 {
		set.Add(stream.New(nsRSM, "first", "index", "0").AddText(stanzaID(recs[0].seq)))
		set.Add(stream.New(nsRSM, "last").AddText(stanzaID(recs[len(recs)-1].seq)))
	}
	fin.Add(set)
	return fin, nil
}
