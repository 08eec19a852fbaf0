package roster

// Transaction-level access for xmppd/portable (XEP-0227 export and
// import): the import writes every kind of an account's data in one
// transaction, so it cannot go through Update's own commit.

import (
	"bytes"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// EachTx calls fn with every record of user (listed items and bare
// pending requests alike), in JID order.
func EachTx(tx *bolt.Tx, user string, fn func(Item) error) error {
	b := tx.Bucket(bucketItems)
	if b == nil {
		return nil
	}
	p := prefix(user)
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		it, err := decode(k, v, user)
		if err != nil {
			return err
		}
		if err := fn(it); err != nil {
			return err
		}
	}
	return nil
}

// PutTx stores it as user's record of it.JID, charged to the budget and
// within the roster's limits, and moves the roster version on.
func PutTx(tx *bolt.Tx, user string, it Item) error {
	if it.empty() {
		return nil
	}
	if !it.PendingIn || len(it.Request) > maxRequest {
		it.Request = nil
	}
	all, listed := count(tx, user)
	if _, existed := entryTx(tx, user, it.JID); !existed && all >= maxRecords || it.Listed && listed >= MaxItems {
		return ErrFull
	}
	if err := put(tx, user, it.JID, &it, budget); err != nil {
		return err
	}
	vb, err := tx.CreateBucketIfNotExists(bucketVer)
	if err != nil {
		return err
	}
	return vb.Put([]byte(user), store.U64(verTx(tx, user)+1))
}
