// Package offline stores messages for accounts that have no available
// resource (XEP-0160) and delivers them, stamped with a XEP-0203 delay, when
// the account next sends available presence with a non-negative priority.
//
// A message is stored durably (group commit) before the MessageOffline hook
// returns, so the core never reports it as delivered while it could still be
// lost; it is deleted only after it was handed to a session.
package offline

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Per-account limits: an SD card is small, and a sender flooding an absent
// member should be told to stop rather than fill it. See quota.go for the
// per-sender share and how the limits are charged.
const (
	MaxMessages = 1000
	MaxBytes    = 10 << 20
)

// chunk bounds what one delivery step queues on a session: a session's
// write queue holds session.MaxQueue bytes, and a backlog bigger than that
// sent at once would overflow it and close the session.
const (
	chunkBytes = 256 << 10
	chunkMsgs  = 250
	chunkPause = 500 * time.Millisecond
)

const (
	nsDelay = "urn:xmpp:delay"
	nsHints = "urn:xmpp:hints"
	// Feature is the disco feature XEP-0160 names.
	Feature = "msgoffline"
)

var bucketMsgs = []byte("offline_msgs") // user\0 seq → stanza

// ErrFull is the bounce for a message to an account whose storage is full.
var ErrFull = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
	Text: "the recipient's offline message storage is full"}

// flushedKey marks a session that received the stored messages once: later
// messages stored for the account while it is available go to it too.
type flushedKey struct{}

type mod struct {
	srv   *server.Server
	locks server.Locks // one delivery per account at a time
}

// Register plugs offline storage into srv.
func Register(srv *server.Server) {
	m := &mod{srv: srv}
	if err := m.recount(); err != nil {
		srv.Log.Error("offline: charge messages stored by an older build", "err", err)
	}
	srv.AddFeature(server.ToServer, Feature)
	srv.Hook(server.MessageOffline, 0, m.store)
	server.Available.On(srv, m.available)
	server.Drained.On(srv, m.drained)
	server.ArchiveSent.On(srv, m.archiveSent)
	srv.OnAccountDeleted(func(user string) {
		if err := m.deleteUser(user); err != nil {
			srv.Log.Error("offline: delete account data", "user", user, "err", err)
		}
	})
}

// lock holds user's delivery lock. server.Locks keeps an entry only
// while it is held or waited for: the sync.Map it replaces kept a mutex for
// every account that ever received a message.
func (m *mod) lock(user string) func() { return m.locks.Lock(user) }

// worthStoring says whether a message carries something a person reads
// later. A standalone chat state for an absent user is dropped (XEP-0085
// §5.5), not bounced and not stored.
func worthStoring(el *stream.Element) bool {
	if el.Child(nsHints, "no-store") != nil {
		return false
	}
	if el.Child(stream.NSClient, "body") != nil || el.Child(nsHints, "store") != nil {
		return true
	}
	for _, c := range el.Children() {
		switch c.Space {
		case "eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2", "urn:xmpp:openpgp:0", "jabber:x:encrypted",
			"jabber:x:conference", "http://jabber.org/protocol/muc#user",
			// Delivery receipts, read markers and call offers change what
			// the recipient's app shows once it is back.
			"urn:xmpp:receipts", "urn:xmpp:chat-markers:0", "urn:xmpp:jingle-message:0":
			if c.Space == "urn:xmpp:receipts" && c.Local != "received" {
				continue
			}
			return true
		}
	}
	return false
}

func hasOwnDelay(el *stream.Element, domain string) bool {
	for _, c := range el.Children() {
		if c.Space == nsDelay && c.Local == "delay" && c.Get("from") == domain {
			return true
		}
	}
	return false
}

func prefix(user string) []byte { return append(store.Key(user), 0) }

// Stamp is the XEP-0082 form of t used in delay stamps.
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// store is the MessageOffline hook.
func (m *mod) store(st *server.Stanza) bool {
	switch st.Type() {
	case "", "normal", "chat":
	default:
		return false
	}
	if st.El.Child(nsHints, "no-store") != nil {
		return false // the sender asked: it gets service-unavailable
	}
	if !worthStoring(st.El) {
		return true
	}
	user := st.To.Localpart()
	el := st.El.Copy()
	// XEP-0203: when the server received it, not when it is delivered. A
	// message that comes back (stream management re-routes what a
	// vanished client never acknowledged) keeps its first stamp.
	if !hasOwnDelay(el, m.srv.Domain) {
		el.Add(stream.New(nsDelay, "delay", "from", m.srv.Domain, "stamp", Stamp(time.Now())).AddText("Offline storage"))
	}
	data := el.Append(nil, "")
	sid := archiveID(el, user+"@"+m.srv.Domain)
	sender := senderKey(st.From, m.srv.Domain)
	err := m.srv.Store.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMsgs)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		key := append(prefix(user), store.U64(seq)...)
		// Charged first: over a limit, nothing is written.
		if err := m.charge(tx, user, sender, key, int64(len(data)), 1); err != nil {
			return err
		}
		if err := indexArchiveID(tx, user, sid, key); err != nil {
			return err
		}
		return b.Put(key, data)
	})
	if bounce := (*server.StanzaError)(nil); errors.As(err, &bounce) {
		m.srv.Bounce(st, bounce)
		return true
	}
	if err != nil {
		m.srv.Log.Error("offline: store", "user", user, "err", err)
		return false
	}
	// The account may have come online while this was being written:
	// its initial delivery could have missed it.
	var late []*session.Session
	_, top := m.srv.Router.Available(user)
	for _, s := range top {
		// A backlogged session (stream management push-back) refuses
		// it anyway; Drained hands it over once the client caught up.
		if s.Value(flushedKey{}) != nil && !s.Backlogged() {
			late = append(late, s)
		}
	}
	if len(late) > 0 {
		m.deliver(user, late)
	}
	return true
}

// available delivers the stored messages when a session becomes
// available with a non-negative priority (XEP-0160 §3): at its initial
// presence, or later when it raises its priority or comes back from
// unavailable.
func (m *mod) available(a server.Availability) {
	sess := a.Session
	if sess.Priority() < 0 {
		return
	}
	sess.SetValue(flushedKey{}, true)
	m.deliver(sess.User, []*session.Session{sess})
}

// drained hands what waited in storage to a session that refused messages
// while it was backlogged (session/acks.go: they were stored instead), now
// that its client has caught up.
func (m *mod) drained(sess *session.Session) {
	if sess.Value(flushedKey{}) != nil && sess.Priority() >= 0 {
		m.deliver(sess.User, []*session.Session{sess})
	}
}

type stored struct {
	key  []byte
	data []byte
}

// deliver sends user's stored messages, oldest first, to sessions, one
// chunk at a time, deleting each chunk once it was handed over.
func (m *mod) deliver(user string, sessions []*session.Session) {
	unlock := m.lock(user)
	defer unlock()
	msgs, more, err := m.read(user)
	if err != nil {
		m.srv.Log.Error("offline: read", "user", user, "err", err)
		return
	}
	if len(msgs) == 0 {
		return
	}
	var done [][]byte
	stopped := false
	for _, x := range msgs {
		el, err := stream.ParseElement(x.data)
		if err != nil {
			// A record this build cannot read would block the queue
			// forever: log it and let it go.
			m.srv.Log.Error("offline: undecodable message dropped", "user", user, "err", err)
			done = append(done, x.key)
			continue
		}
		handed := false
		for _, s := range sessions {
			// Addressed to the resource that got it: should that
			// session end without confirming it (stream management),
			// it is re-routed instead of assumed to have reached the
			// account's other resources like a live bare-JID message.
			el.Set("to", s.JID.String())
			if s.Send(el) {
				handed = true
			}
		}
		if !handed {
			stopped = true
			break
		}
		done = append(done, x.key)
	}
	if err := m.remove(user, done); err != nil {
		m.srv.Log.Error("offline: delete delivered", "user", user, "err", err)
		return
	}
	if more && !stopped {
		// Let the session's writer drain the last chunk first.
		time.AfterFunc(chunkPause, func() {
			var open []*session.Session
			for _, s := range sessions {
				if !s.Closing() {
					open = append(open, s)
				}
			}
			if len(open) > 0 {
				m.deliver(user, open)
			}
		})
	}
}

// read returns the oldest stored messages of user, up to one chunk.
func (m *mod) read(user string) (out []stored, more bool, err error) {
	err = m.srv.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsgs)
		if b == nil {
			return nil
		}
		p := prefix(user)
		size := 0
		c := b.Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if len(out) > 0 && (len(out) >= chunkMsgs || size+len(v) > chunkBytes) {
				more = true
				return nil
			}
			out = append(out, stored{slices.Clone(k), slices.Clone(v)})
			size += len(v)
		}
		return nil
	})
	return out, more, err
}

// remove deletes delivered messages durably, so that a restart does not
// deliver them again.
func (m *mod) remove(user string, keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	return m.srv.Store.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsgs)
		if b == nil {
			return nil
		}
		for _, k := range keys {
			v := b.Get(k)
			if v == nil {
				continue
			}
			if err := m.free(tx, user, k, v); err != nil {
				return err
			}
			if err := unindexArchiveID(tx, k); err != nil {
				return err
			}
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Count returns how many messages are stored for user and their size.
func Count(st *store.Store, user string) (n, size uint64, err error) {
	err = st.View(func(tx *bolt.Tx) error {
		u := store.UsageOf(tx, user, Kind)
		n, size = uint64(u.Items), uint64(u.Bytes)
		return nil
	})
	return n, size, err
}

func (m *mod) deleteUser(user string) error {
	unlock := m.lock(user)
	defer unlock()
	err := m.srv.Store.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMsgs); b != nil {
			p := prefix(user)
			var keys, vals [][]byte
			c := b.Cursor()
			for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
				keys, vals = append(keys, slices.Clone(k)), append(vals, slices.Clone(v))
			}
			for i, k := range keys {
				// Frees each sender's share and what a local sender
				// has waiting in all.
				if err := m.free(tx, user, k, vals[i]); err != nil {
					return err
				}
				if err := unindexArchiveID(tx, k); err != nil {
					return err
				}
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("offline: delete %s: %w", user, err)
	}
	return nil
}
