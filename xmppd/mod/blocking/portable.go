package blocking

// Transaction-level access for xmppd/portable (XEP-0227 export and
// import). The module keeps every list in memory from its start, so an
// import must happen while no server has the database open.

import (
	"bytes"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// ListTx returns user's blocked JIDs in order.
func ListTx(tx *bolt.Tx, user string) []string {
	b := tx.Bucket(bucket)
	if b == nil {
		return nil
	}
	var out []string
	p := store.Key(user, "")
	c := b.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k[len(p):]))
	}
	return out
}

// AddTx blocks j for user (charged within the list's limits).
func AddTx(tx *bolt.Tx, user, j string) error {
	b, err := tx.CreateBucketIfNotExists(bucket)
	if err != nil {
		return err
	}
	k := store.Key(user, j)
	if b.Get(k) != nil {
		return nil
	}
	if err := store.Charge(tx, user, Kind, cost(user, j), 1, store.Limit{Bytes: MaxBytes, Items: MaxItems}); err != nil {
		return err
	}
	return b.Put(k, nil)
}
