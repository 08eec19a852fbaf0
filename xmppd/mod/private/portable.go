package private

// Transaction-level access for xmppd/portable (XEP-0227 export and
// import), on the bucket, keys and charges Register's store uses.

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

var bucket = []byte("private")

// EachTx calls fn with each element user stored, as XML.
func EachTx(tx *bolt.Tx, user string, fn func(xml []byte) error) error {
	b := tx.Bucket(bucket)
	if b == nil {
		return nil
	}
	p := store.Key(user, "")
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// PutTx stores el for user (replacing what was stored under its
// namespace), charged within the account's private-storage limits.
func PutTx(tx *bolt.Tx, user string, el *stream.Element) error {
	if el.Space == "" || len(el.Append(nil, stream.NSClient)) > MaxSize {
		return fmt.Errorf("private: element <%s xmlns=%q> refused (no namespace or over %d bytes)", el.Local, el.Space, MaxSize)
	}
	b, err := tx.CreateBucketIfNotExists(bucket)
	if err != nil {
		return err
	}
	k, v := store.Key(user, el.Space, el.Local), el.Append(nil, "")
	d, n := int64(len(k)+len(v)), int64(1)
	if old := b.Get(k); old != nil {
		d, n = d-int64(len(k)+len(old)), 0
	}
	if err := store.Charge(tx, user, Kind, d, n, store.Limit{Bytes: MaxBytes, Items: MaxKeys}); err != nil {
		return err
	}
	return b.Put(k, v)
}
