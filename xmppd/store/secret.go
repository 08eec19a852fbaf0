package store

import (
	"crypto/rand"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// secretLen is 256 bits, the size of an HMAC-SHA256 key.
const secretLen = 32

// Secret returns the box's secret named name: 32 bytes from crypto/rand,
// made on first use and kept in the meta bucket, so they stay the same
// across restarts and differ from box to box. (SCRAM's made-up salts for
// unknown names are keyed with one: they must not change between attempts,
// nor be computable by someone without the box's database.)
func (s *Store) Secret(name string) ([]byte, error) {
	key := []byte("secret/" + name)
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			if v := b.Get(key); len(v) == secretLen {
				out = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err != nil || out != nil {
		return out, err
	}
	fresh := make([]byte, secretLen)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("store: secret %s: %w", name, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		// Another caller may have made it between the two transactions:
		// the first one written wins.
		if v := b.Get(key); len(v) == secretLen {
			out = append([]byte(nil), v...)
			return nil
		}
		out = fresh
		return b.Put(key, fresh)
	})
	if err != nil {
		return nil, fmt.Errorf("store: secret %s: %w", name, err)
	}
	if out == nil {
		return nil, errors.New("store: secret " + name + " missing")
	}
	return out, nil
}
