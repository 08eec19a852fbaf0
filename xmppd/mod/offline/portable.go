package offline

// Transaction-level access for xmppd/portable (XEP-0227 export and
// import), on the buckets, keys and charges the module's store uses.

import (
	"bytes"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
	"mellium.im/xmpp/jid"
)

// EachTx calls fn with each message stored for user (as XML), oldest first.
func EachTx(tx *bolt.Tx, user string, fn func(xml []byte) error) error {
	b := tx.Bucket(bucketMsgs)
	if b == nil {
		return nil
	}
	p := prefix(user)
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// ImportTx stores el for user of domain as store does (charged to the
// recipient and the sender's share, indexed by its archive id). el
// should carry its own delay stamp: none is added.
func ImportTx(tx *bolt.Tx, domain, user string, el *stream.Element) error {
	m := &mod{srv: &server.Server{Domain: domain}}
	from, _ := jid.Parse(el.Get("from"))
	b, err := tx.CreateBucketIfNotExists(bucketMsgs)
	if err != nil {
		return err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	key := append(prefix(user), store.U64(seq)...)
	data := el.Append(nil, "")
	if err := m.charge(tx, user, senderKey(from, domain), key, int64(len(data)), 1); err != nil {
		return err
	}
	if err := indexArchiveID(tx, user, archiveID(el, user+"@"+domain), key); err != nil {
		return err
	}
	return b.Put(key, data)
}
