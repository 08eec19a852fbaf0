package offline

import (
	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// SetUsageForTest pretends user has n stored messages of size bytes.
func SetUsageForTest(st *store.Store, user string, n, size uint64) error {
	return st.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketUsage)
		if err != nil {
			return err
		}
		return putUsage(b, user, n, size)
	})
}
