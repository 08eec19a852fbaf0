package mam

import (
	"bytes"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// Archived counts user's archived messages straight from storage (for the
// external tests).
func Archived(st *store.Store, user string) int {
	n := 0
	st.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMsgs)
		if b == nil {
			return nil
		}
		p := userPrefix(user)
		c := b.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n
}
