package offline

import (
	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// SetUsageForTest pretends user has n stored messages of size bytes.
func SetUsageForTest(st *store.Store, user string, n, size uint64) error {
	return st.Update(func(tx *bolt.Tx) error {
		cur := store.UsageOf(tx, user, Kind)
		return store.Charge(tx, user, Kind, int64(size)-cur.Bytes, int64(n)-cur.Items, store.Limit{})
	})
}

// OldLayoutForTest writes messages the way builds before the storage
// budget did: the stanzas under user\0seq and a count in offline_usage,
// nothing charged.
func OldLayoutForTest(st *store.Store, user string, stanzas ...string) error {
	return st.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMsgs)
		if err != nil {
			return err
		}
		for _, s := range stanzas {
			seq, _ := b.NextSequence()
			if err := b.Put(append(prefix(user), store.U64(seq)...), []byte(s)); err != nil {
				return err
			}
		}
		ub, err := tx.CreateBucketIfNotExists(bucketOldUsage)
		if err != nil {
			return err
		}
		return ub.Put([]byte(user), make([]byte, 16))
	})
}
