package mam

import (
	"errors"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Paging bounds. A page holds at most MaxPage messages (a larger RSM
// <max/> is clamped, not refused: clients ask for 100 or 1,000,000 and
// page on) and about pageBytes of XML, so that one page always fits a
// session's write queue (session.MaxQueue) with room to spare.
const (
	MaxPage   = 50
	pageBytes = 256 << 10
	maxIDs    = MaxPage // an ids query names at most one page
	// commitWait bounds a query's wait for outstanding archive commits.
	commitWait = 10 * time.Second
)

// owner checks that the asker queries its own archive and returns the
// account.
func (m *mod) owner(st *server.Stanza) (string, error) {
	user := m.localUser(st.To)
	if user == "" || st.To.Resourcepart() != "" {
		return "", server.ErrItemNotFound
	}
	if m.localUser(st.From) != user {
		return "", withText(server.ErrForbidden, "only the account itself may read its archive")
	}
	return user, nil
}

// form answers the query-fields request (XEP-0313 §5.1).
func (m *mod) form(st *server.Stanza) (*stream.Element, error) {
	if _, err := m.owner(st); err != nil {
		return nil, err
	}
	x := stream.New(nsData, "x", "type", "form")
	x.Add(stream.New(nsData, "field", "var", "FORM_TYPE", "type", "hidden").
		Add(stream.New(nsData, "value").AddText(NS)))
	for _, f := range [][2]string{{"with", "jid-single"}, {"start", "text-single"}, {"end", "text-single"},
		{"before-id", "text-single"}, {"after-id", "text-single"}, {"ids", "text-multi"}} {
		x.Add(stream.New(nsData, "field", "var", f[0], "type", f[1]))
	}
	return stream.New(NS, "query").Add(x), nil
}

// formValues reads a submitted data form: var → values.
func formValues(x *stream.Element) (map[string][]string, error) {
	if t := x.Get("type"); t != "submit" && t != "" {
		return nil, withText(server.ErrBadRequest, "the form must be submitted")
	}
	out := map[string][]string{}
	for _, f := range x.Children() {
		if f.Space != nsData || f.Local != "field" {
			continue
		}
		name := f.Get("var")
		if name == "" {
			return nil, withText(server.ErrBadRequest, "a field without var")
		}
		vals := []string{}
		for _, v := range f.Children() {
			if v.Space == nsData && v.Local == "value" {
				vals = append(vals, strings.TrimSpace(v.Text()))
			}
		}
		out[name] = append(out[name], vals...)
	}
	if ft := out["FORM_TYPE"]; len(ft) > 0 && (len(ft) != 1 || ft[0] != NS) {
		return nil, withText(server.ErrBadRequest, "FORM_TYPE is not "+NS)
	}
	return out, nil
}

// parseQuery turns a <query/> into a query on user's archive. Ids that
// are not in the archive (or are not ids at all) are item-not-found, as
// XEP-0313 §4.1.4 and §4.1.6 and XEP-0059 §2.6 ask.
func (m *mod) parseQuery(tx *bolt.Tx, user string, q *stream.Element) (query, error) {
	out := query{max: MaxPage, maxBytes: pageBytes}
	known := func(s string) (uint64, error) {
		id, ok := ParseID(s)
		if !ok || !exists(tx, user, id) {
			return 0, withText(server.ErrItemNotFound, "no message "+strconv.Quote(truncate(s))+" in the archive")
		}
		return id, nil
	}
	single := func(name string, v []string) (string, error) {
		if len(v) != 1 || v[0] == "" {
			return "", withText(server.ErrBadRequest, name+" takes one value")
		}
		return v[0], nil
	}
	if x := q.Child(nsData, "x"); x != nil {
		vals, err := formValues(x)
		if err != nil {
			return out, err
		}
		for name, v := range vals {
			switch name {
			case "with", "start", "end", "after-id", "before-id":
				out.filtered = true
			}
			switch name {
			case "FORM_TYPE":
			case "with":
				s, err := single(name, v)
				if err != nil {
					return out, err
				}
				j, err := jid.Parse(s)
				if err != nil {
					return out, withText(server.ErrJIDMalformed, "with: not a JID")
				}
				out.with, out.withFull = j.String(), j.Resourcepart() != ""
			case "start", "end":
				s, err := single(name, v)
				if err != nil {
					return out, err
				}
				t, err := time.Parse(time.RFC3339, s)
				if err != nil {
					return out, withText(server.ErrBadRequest, name+": not an XEP-0082 date and time")
				}
				if name == "start" {
					out.start = timeID(t)
				} else if out.end = timeID(t); out.end == 0 {
					return out, nil // before 1970: nothing matches (end is inclusive)
				}
			case "after-id", "before-id":
				s, err := single(name, v)
				if err != nil {
					return out, err
				}
				id, err := known(s)
				if err != nil {
					return out, err
				}
				if name == "after-id" {
					out.after = id
				} else {
					out.before = id
				}
			case "ids":
				if len(v) == 0 {
					return out, withText(server.ErrBadRequest, "ids without a value")
				}
				if len(v) > maxIDs {
					return out, withText(server.ErrNotAcceptable, "at most "+strconv.Itoa(maxIDs)+" ids in one query")
				}
				out.ids = []uint64{}
				for _, s := range v {
					id, err := known(s)
					if err != nil {
						return out, err
					}
					out.ids = append(out.ids, id)
				}
			default:
				return out, withText(server.ErrBadRequest, "unknown field "+strconv.Quote(truncate(name)))
			}
		}
	}
	if set := q.Child(nsRSM, "set"); set != nil {
		if v := set.Child(nsRSM, "max"); v != nil {
			n, err := strconv.ParseUint(strings.TrimSpace(v.Text()), 10, 63)
			if err != nil {
				// Digits too many for 63 bits are still a number: clamp.
				if errors.Is(err, strconv.ErrRange) {
					n = MaxPage
				} else {
					return out, withText(server.ErrBadRequest, "max is not a number")
				}
			}
			out.max = int(min(n, MaxPage))
		}
		if set.Child(nsRSM, "index") != nil {
			return out, withText(server.ErrFeatureNotImpl, "paging by index is not supported; use after and before")
		}
		if v := set.Child(nsRSM, "after"); v != nil {
			id, err := known(strings.TrimSpace(v.Text()))
			if err != nil {
				return out, err
			}
			if id > out.after {
				out.after = id
			}
			out.rsmFrom = true
		}
		if v := set.Child(nsRSM, "before"); v != nil {
			out.last = true
			if s := strings.TrimSpace(v.Text()); s != "" {
				id, err := known(s)
				if err != nil {
					return out, err
				}
				if out.before == 0 || id < out.before {
					out.before = id
				}
				out.rsmFrom = true
			}
		}
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// query answers a MAM query: the page's messages to the asking session,
// then the iq result with <fin/>.
func (m *mod) query(st *server.Stanza) (*stream.Element, error) {
	user, err := m.owner(st)
	if err != nil {
		return nil, err
	}
	qel := st.El.FirstChild()
	// Every message archived before the query must be readable by it
	// (idAlloc): commits take milliseconds.
	if !m.ids.waitCommitted(user, commitWait) {
		m.srv.Log.Error("mam: querying with archive commits outstanding", "user", user)
	}
	var recs []record
	complete := true
	var q query
	count := int64(-1) // XEP-0059 <count/>: -1 when not cheap to know
	err = m.srv.Store.View(func(tx *bolt.Tx) error {
		var err error
		q, err = m.parseQuery(tx, user, qel)
		if err != nil {
			return err
		}
		v := newView(tx, user)
		recs, complete, err = v.page(q)
		switch {
		case q.ids != nil:
			count = int64(len(recs))
		case !q.filtered:
			// The whole archive: what is charged to the account's
			// budget, one item per merged record, and the journaled
			// ones (not charged until merged), so a count costs one read
			// however large the archive. Narrowed sets would need a walk
			// of the range: no count.
			count = store.UsageOf(tx, user, Kind).Items + int64(len(v.journal()))
		}
		return err
	})
	if errors.Is(err, errUnknownID) {
		return nil, withText(server.ErrItemNotFound, "an id is not in the archive")
	}
	if err != nil {
		return nil, err
	}
	flip := qel.Child(NS, "flip-page") != nil
	if flip {
		for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
			recs[i], recs[j] = recs[j], recs[i]
		}
	}
	owner := m.bare(user)
	queryID := qel.Get("queryid")
	sent := make([]string, 0, len(recs))
	for i, r := range recs {
		el, err := stream.ParseElement(r.xml)
		if err != nil {
			m.srv.Log.Error("mam: undecodable archived message skipped", "user", user, "id", FormatID(r.id), "err", err)
			continue
		}
		id := FormatID(r.id)
		el.Add(stream.New(nsSID, "stanza-id", "id", id, "by", owner))
		res := stream.New(NS, "result", "id", id)
		if queryID != "" {
			res.Set("queryid", queryID)
		}
		res.Add(stream.New(nsForward, "forwarded").Add(
			stream.New(nsDelay, "delay", "stamp", idTime(r.id).Format("2006-01-02T15:04:05.000000Z")), el))
		msg := stream.New(stream.NSClient, "message", "from", owner, "to", st.From.String())
		msg.Add(res)
		if !m.send(st, msg) {
			// The session takes no more (stream management push-back,
			// closing): the page ends here, and says it is not the end.
			recs, complete = recs[:i], false
			break
		}
		sent = append(sent, id)
	}
	if st.Origin != nil {
		// Its unacknowledged archived messages are not stored offline
		// when its session ends (server.Redeliver).
		server.MarkArchiveSync(st.Origin)
	}
	if len(sent) > 0 {
		server.ArchiveSent.Fire(m.srv, server.ArchivePage{User: user, IDs: sent})
	}
	fin := stream.New(NS, "fin")
	if complete {
		fin.Set("complete", "true")
	}
	set := stream.New(nsRSM, "set")
	if len(recs) > 0 {
		first := stream.New(nsRSM, "first").AddText(FormatID(recs[0].id))
		// index (XEP-0059 §2.4) where it is known without counting: the
		// first page of the set. Not on the newest page (<before/>),
		// although it is known there (count less the page): slixmpp's
		// RSM iterator stops paging backwards when index + page =
		// count, which the newest page always meets (its backward
		// paging through our archive ended after one page; mam e2e).
		if count >= 0 && !flip && q.ids == nil && !q.rsmFrom && !q.last {
			first.Set("index", "0")
		}
		set.Add(first)
		set.Add(stream.New(nsRSM, "last").AddText(FormatID(recs[len(recs)-1].id)))
	}
	if count >= 0 {
		set.Add(stream.New(nsRSM, "count").AddText(strconv.FormatInt(count, 10)))
	}
	return fin.Add(set), nil
}

func (m *mod) send(st *server.Stanza, el *stream.Element) bool {
	if st.Origin != nil {
		return st.Origin.Send(el)
	}
	m.srv.Route(el)
	return true
}

func (m *mod) getPrefs(st *server.Stanza) (*stream.Element, error) {
	user, err := m.owner(st)
	if err != nil {
		return nil, err
	}
	var p prefs
	err = m.srv.Store.View(func(tx *bolt.Tx) error {
		p = readPrefs(tx, user)
		return nil
	})
	return p.element(), err
}

func (m *mod) setPrefs(st *server.Stanza) (*stream.Element, error) {
	user, err := m.owner(st)
	if err != nil {
		return nil, err
	}
	p, err := parsePrefs(st.El.FirstChild())
	if err != nil {
		return nil, err
	}
	if err := m.savePrefs(user, p); err != nil {
		return nil, err
	}
	return p.element(), nil
}

// metadata answers XEP-0313 §6.1: the first and last message's id and
// time, so a client knows whether it is in sync without a query.
func (m *mod) metadata(st *server.Stanza) (*stream.Element, error) {
	user, err := m.owner(st)
	if err != nil {
		return nil, err
	}
	var first, last uint64
	if err := m.srv.Store.View(func(tx *bolt.Tx) error {
		first, last = bounds(tx, user)
		return nil
	}); err != nil {
		return nil, err
	}
	md := stream.New(NS, "metadata")
	if first != 0 {
		stamp := func(id uint64) string { return idTime(id).Format("2006-01-02T15:04:05.000000Z") }
		md.Add(stream.New(NS, "start", "id", FormatID(first), "timestamp", stamp(first)))
		md.Add(stream.New(NS, "end", "id", FormatID(last), "timestamp", stamp(last)))
	}
	return md, nil
}
