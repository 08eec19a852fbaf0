package muc

import (
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Retraction (XEP-0424) and moderation (XEP-0425): the archived message
// is replaced by a tombstone — who sent it (occupant-id) and that it was
// retracted, nothing of its content — and the room tells its occupants.
const (
	nsRetract  = "urn:xmpp:message-retract:1"
	nsModerate = "urn:xmpp:message-moderate:1"
)

// tombstone replaces the archived message seq of r (locked) with what
// mk makes of it; mk may refuse (its error is returned, nothing changes).
func (m *Service) tombstone(r *room, seq uint64, mk func(orig *stream.Element) (*stream.Element, error)) error {
	var delta int64
	err := m.srv.Store.Batch(func(tx *bolt.Tx) error {
		delta = 0
		ab := tx.Bucket(bucketArchive).Bucket([]byte(r.name))
		if ab == nil {
			return server.ErrItemNotFound
		}
		v := ab.Get(store.U64(seq))
		nanos, xml, ok := decodeRecord(v)
		if !ok {
			return server.ErrItemNotFound
		}
		orig, err := stream.ParseElement(xml)
		if err != nil {
			return server.ErrItemNotFound
		}
		if orig.Child(nsRetract, "retracted") != nil {
			return withText(server.ErrItemNotFound, "already retracted")
		}
		t, err := mk(orig)
		if err != nil {
			return err
		}
		rec := encodeRecord(nanos, t.String())
		delta = int64(len(rec)) - int64(len(v))
		if err := ab.Put(store.U64(seq), rec); err != nil {
			return err
		}
		// The stored bookkeeping, not r.st.arc: appends queued on the
		// commit queue (fanout.go) may have moved it since.
		a := decodeArcMeta(tx.Bucket(bucketArcMeta).Get([]byte(r.name)))
		a.Bytes += delta
		return tx.Bucket(bucketArcMeta).Put([]byte(r.name), a.encode())
	})
	if err != nil {
		return err
	}
	r.st.arc.Bytes += delta
	return nil
}

// retractionTarget is the stanza-id a groupchat message retracts, if any.
func retractionTarget(el *stream.Element) (uint64, bool, bool) {
	rt := el.Child(nsRetract, "retract")
	if rt == nil {
		return 0, false, false
	}
	seq, ok := parseStanzaID(rt.Get("id"))
	return seq, ok, true
}

// selfRetract handles a groupchat message with <retract/> from o: only
// the sender of the original (same occupant-id) may; the tombstone keeps
// who and when. It reports false (and has bounced st) if refused.
func (m *Service) selfRetract(st *server.Stanza, r *room, o *occupant, seq uint64) bool {
	err := m.tombstone(r, seq, func(orig *stream.Element) (*stream.Element, error) {
		if occIDOf(orig) != o.id {
			return nil, withText(errForbidden, "only the sender may retract a message")
		}
		t := stream.New(stream.NSClient, "message", "type", "groupchat", "from", orig.Get("from"))
		t.Add(stream.New(nsRetract, "retracted", "stamp", m.o.Now().UTC().Format(time.RFC3339)))
		t.Add(stream.New(nsOccID, "occupant-id", "id", o.id))
		return t, nil
	})
	if err != nil {
		m.bounce(st, err)
		return false
	}
	return true
}

func occIDOf(el *stream.Element) string {
	if x := el.Child(nsOccID, "occupant-id"); x != nil {
		return x.Get("id")
	}
	return ""
}

// moderate is XEP-0425: a moderator retracts someone's message.
func (m *Service) moderate(st *server.Stanza) (*stream.Element, error) {
	r, err := m.roomOf(st)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	o := r.occupantOf(st.From)
	if o == nil || o.role != "moderator" {
		return nil, withText(errForbidden, "only moderators may moderate")
	}
	q := st.El.FirstChild()
	if q.Child(nsRetract, "retract") == nil {
		return nil, withText(server.ErrBadRequest, "only retraction is supported")
	}
	seq, ok := parseStanzaID(q.Get("id"))
	if !ok {
		return nil, server.ErrItemNotFound
	}
	reason := limit(q.ChildText(nsModerate, "reason"), 1000)
	by := m.roomJID(r.name) + "/" + o.nick
	moderated := func() *stream.Element {
		md := stream.New(nsModerate, "moderated", "by", by)
		md.Add(stream.New(nsOccID, "occupant-id", "id", o.id))
		return md
	}
	err = m.tombstone(r, seq, func(orig *stream.Element) (*stream.Element, error) {
		t := stream.New(stream.NSClient, "message", "type", "groupchat", "from", orig.Get("from"))
		rd := stream.New(nsRetract, "retracted", "stamp", m.o.Now().UTC().Format(time.RFC3339))
		rd.Add(moderated())
		if reason != "" {
			rd.Add(stream.New(nsRetract, "reason").AddText(reason))
		}
		t.Add(rd)
		if id := occIDOf(orig); id != "" {
			t.Add(stream.New(nsOccID, "occupant-id", "id", id))
		}
		return t, nil
	})
	if err != nil {
		return nil, err
	}
	msg := stream.New(stream.NSClient, "message", "type", "groupchat", "from", m.roomJID(r.name))
	rt := stream.New(nsRetract, "retract", "id", stanzaID(seq))
	rt.Add(moderated())
	if reason != "" {
		rt.Add(stream.New(nsRetract, "reason").AddText(reason))
	}
	msg.Add(rt)
	// The notice is archived too, so members offline now learn of it;
	// it takes its place after the messages accepted before it.
	m.postMessage(r, st, msg, true)
	return nil, nil
}
