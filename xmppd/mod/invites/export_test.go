package invites

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// Expire moves an invite's expiry into the past (Create refuses a TTL
// under an hour, so tests cannot wait for one).
func Expire(st *store.Store, token string) error {
	return st.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		inv, err := decode(bk.Get([]byte(token)))
		if err != nil {
			return err
		}
		inv.Expires = time.Now().Add(-time.Second)
		v, _ := json.Marshal(inv)
		return bk.Put([]byte(token), v)
	})
}
