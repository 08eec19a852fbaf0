// Package last is XEP-0012 last activity: the server's uptime, and for an
// account how long ago its last session ended, told only to those who may
// see its presence anyway.
package last

import (
	"encoding/binary"
	"strconv"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "jabber:iq:last"

var bucket = []byte("last_logout") // user → 8-byte unix seconds + status text

// maxStatus bounds the stored status of the last unavailable presence.
const maxStatus = 1 << 10

// Register adds jabber:iq:last.
func Register(srv *server.Server) {
	started := time.Now()
	srv.AddFeature(server.ToServer, ns)
	srv.AddFeature(server.ToAccount, ns)
	srv.HandleIQ(server.ToServer, "get", ns, "query", func(*server.Stanza) (*stream.Element, error) {
		return result(time.Since(started), ""), nil
	})
	srv.HandleIQ(server.ToAccount, "get", ns, "query", func(st *server.Stanza) (*stream.Element, error) {
		user := st.To.Localpart()
		// XEP-0012 §4: only for those authorized to see the presence
		// (the roster's rule, asked through the server).
		if !srv.Contacts().MayViewPresence(user, st.From) {
			return nil, server.ErrForbidden
		}
		if all, _ := srv.Router.Available(user); len(all) > 0 {
			return result(0, ""), nil
		}
		at, status, ok, err := get(srv.Store, user)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, &server.StanzaError{Type: "cancel", Condition: "item-not-found", Text: "never logged out"}
		}
		return result(time.Since(at), status), nil
	})
	srv.OnClosed(func(sess *session.Session) { closed(srv, sess) })
	// The admin pages' "last here" (through the server, not this bucket).
	srv.SetLastSeen(func(user string) (time.Time, bool) {
		at, _, ok, err := get(srv.Store, user)
		return at, ok && err == nil
	})
	srv.OnAccountDeleted(func(user string) {
		srv.Store.Update(func(tx *bolt.Tx) error {
			if b := tx.Bucket(bucket); b != nil {
				return b.Delete([]byte(user))
			}
			return nil
		})
	})
}

func result(d time.Duration, status string) *stream.Element {
	if d < 0 {
		d = 0
	}
	return stream.New(ns, "query", "seconds", strconv.FormatInt(int64(d/time.Second), 10)).AddText(status)
}

// closed records the logout when the account's last session ends: one
// group-committed write per logout, none while other sessions stay.
func closed(srv *server.Server, sess *session.Session) {
	if len(srv.Router.Sessions(sess.User)) > 0 {
		return
	}
	var status string
	// A client that said goodbye with <presence type='unavailable'> left
	// its status there (the presence module stores it on the session).
	if p, avail, _ := sess.Presence(); p != nil && !avail && p.Get("type") == "unavailable" {
		status = truncate(p.ChildText(stream.NSClient, "status"), maxStatus)
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().Unix()))
	v = append(v, status...)
	err := srv.Store.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(sess.User), v)
	})
	if err != nil {
		srv.Log.Error("last: record logout", "user", sess.User, "err", err)
	}
}

func get(st *store.Store, user string) (at time.Time, status string, ok bool, err error) {
	err = st.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(user))
		if len(v) < 8 {
			return nil
		}
		at = time.Unix(int64(binary.BigEndian.Uint64(v)), 0)
		status, ok = string(v[8:]), true
		return nil
	})
	return
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
