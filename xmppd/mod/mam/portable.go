package mam

// Transaction-level access for xmppd/portable (XEP-0227 export and
// import), through the archive's own record functions (put, decodeRecord),
// so that the bucket layout and the charges stay this package's.

import (
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Record is one archived message as the export sees it.
type Record struct {
	ID       uint64
	Time     time.Time
	Outgoing bool   // sent by the account
	Peer     string // the other party's full JID
	XML      []byte // the stanza as stored (valid only during the call)
}

// EachTx calls fn with each of user's archived messages, oldest first
// (journaled ones too, see journal.go).
func EachTx(tx *bolt.Tx, user string, fn func(Record) error) error {
	return newView(tx, user).each(func(r record) error {
		return fn(Record{ID: r.id, Time: idTime(r.id), Outgoing: r.dir == dirOut, Peer: r.peer, XML: r.xml})
	})
}

// LastIDTx is the newest id in user's archive, 0 if it is empty.
func LastIDTx(tx *bolt.Tx, user string) uint64 {
	_, last := bounds(tx, user)
	return last
}

// IDAt is the archive id of a message archived at t (before uniqueness).
func IDAt(t time.Time) uint64 { return timeID(t) }

// ImportTx archives el for user under id (which must be above LastIDTx
// for the archive to stay in order), charged like any archived message.
func ImportTx(st *store.Store, tx *bolt.Tx, user string, outgoing bool, peer string, el *stream.Element, id uint64) error {
	dir := byte(dirIn)
	if outgoing {
		dir = dirOut
	}
	return put(st, tx, entry{user: user, dir: dir, peer: peer, el: el, xml: el.Append(nil, "")}, id)
}
