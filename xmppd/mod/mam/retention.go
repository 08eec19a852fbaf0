package mam

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// Retention: messages older than the configured time (DefaultRetention
// unless the appliance config's archive section says otherwise) are
// deleted a little at a time. One tick deletes at most sweepRecords
// records and looks at most at sweepUsers accounts, in one short write
// transaction that shares its fsync with the messages of that moment
// (Store.Batch): the first tick after a year offline, or after the
// retention was shortened, must not hold the single bbolt writer for
// seconds while members' messages wait for their commit.
const (
	DefaultRetention = 30 * 24 * time.Hour
	sweepEvery       = time.Minute
	sweepRecords     = 500
	sweepUsers       = 200
	deleteChunk      = 2000 // account deletion, per transaction
)

// sweeper remembers where the last tick stopped, so that every account's
// turn comes even when the budget runs out before the end.
type sweeper struct {
	next []byte // the key to Seek to; nil: from the start
}

// sweep deletes expired records (ids below cutoff) for one tick and
// reports how many went.
func (m *mod) sweep(cutoff uint64) (int, error) {
	var deleted int
	var next []byte
	from := m.sweeper.next
	err := m.srv.Store.Batch(func(tx *bolt.Tx) error {
		deleted, next = 0, nil // Batch may run this again
		b := tx.Bucket(bucketMsgs)
		if b == nil {
			return nil
		}
		type victim struct {
			user  string
			keys  [][]byte
			bytes int64
		}
		var victims []victim
		budget := sweepRecords
		c := b.Cursor()
		k, v := c.Seek(from)
		if from == nil {
			k, v = c.First()
		}
		for users := 0; k != nil && budget > 0 && users < sweepUsers; users++ {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) != i+9 {
				k, v = c.Next() // not a record key of ours: step over it
				continue
			}
			user := string(k[:i])
			p := k[: i+1 : i+1]
			p = slices.Clone(p)
			vic := victim{user: user}
			for ; k != nil && bytes.HasPrefix(k, p) && budget > 0; k, v = c.Next() {
				if binary.BigEndian.Uint64(k[len(p):]) >= cutoff {
					break
				}
				vic.keys = append(vic.keys, slices.Clone(k))
				vic.bytes += int64(len(v))
				budget--
			}
			if len(vic.keys) > 0 {
				victims = append(victims, vic)
			}
			if budget == 0 && k != nil && bytes.HasPrefix(k, p) {
				break // this account has more: start here next tick
			}
			// The next account: past every key of this one.
			k, v = c.Seek(append(p[:len(p)-1:len(p)-1], 1))
		}
		if k != nil {
			next = slices.Clone(k)
		}
		for _, vic := range victims {
			for _, key := range vic.keys {
				if err := b.Delete(key); err != nil {
					return err
				}
			}
			if err := store.Charge(tx, vic.user, Kind, -vic.bytes, -int64(len(vic.keys)), store.Limit{}); err != nil {
				return err
			}
			deleted += len(vic.keys)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("mam: retention: %w", err)
	}
	m.sweeper.next = next
	return deleted, nil
}

// deleteUser removes user's archive and preferences (account deletion),
// a chunk per transaction.
func (m *mod) deleteUser(user string) error {
	p := userPrefix(user)
	for {
		n := 0
		err := m.srv.Store.Update(func(tx *bolt.Tx) error {
			n = 0
			if pb := tx.Bucket(bucketPrefs); pb != nil {
				if err := pb.Delete([]byte(user)); err != nil {
					return err
				}
			}
			b := tx.Bucket(bucketMsgs)
			if b == nil {
				return nil
			}
			var keys [][]byte
			var size int64
			c := b.Cursor()
			for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && len(keys) < deleteChunk; k, v = c.Next() {
				keys = append(keys, slices.Clone(k))
				size += int64(len(v))
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			if n == 0 {
				return nil
			}
			// The store forgets the account's usage before these hooks
			// run; this brings a still-present charge down (never below 0).
			return store.Charge(tx, user, Kind, -size, -int64(n), store.Limit{})
		})
		if err != nil {
			return fmt.Errorf("mam: delete archive of %s: %w", user, err)
		}
		if n < deleteChunk {
			return nil
		}
	}
}
