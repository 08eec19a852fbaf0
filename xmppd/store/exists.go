package store

import bolt "go.etcd.io/bbolt"

// AccountExistsTx reports whether user has an account, inside tx (for
// work that runs in a write transaction of its own, such as the message
// archive's journal merge, which must not open a second transaction on
// the same goroutine: bbolt's remap would wait for it forever).
func AccountExistsTx(tx *bolt.Tx, user string) bool {
	b := tx.Bucket(bucketAccounts)
	return b != nil && b.Get([]byte(user)) != nil
}
