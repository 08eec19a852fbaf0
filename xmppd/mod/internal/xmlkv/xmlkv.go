// Package xmlkv stores small XML payloads per account (vCards, private
// storage) in one bbolt bucket per module.
package xmlkv

import (
	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// KV is one module's bucket.
type KV struct {
	st     *store.Store
	bucket []byte
}

// New returns the store for bucket.
func New(st *store.Store, bucket string) *KV { return &KV{st, []byte(bucket)} }

// Get returns the element stored under key, or nil.
func (kv *KV) Get(key []byte) (*stream.Element, error) {
	var raw []byte
	err := kv.st.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(kv.bucket); b != nil {
			raw = append(raw, b.Get(key)...)
		}
		return nil
	})
	if err != nil || raw == nil {
		return nil, err
	}
	return stream.ParseElement(raw)
}

// Put stores el durably (group commit) under key.
func (kv *KV) Put(key []byte, el *stream.Element) error {
	return kv.PutAll([]Put{{key, el}})
}

// Put is one element to store under Key.
type Put struct {
	Key []byte
	El  *stream.Element
}

// PutAll stores several elements in one durable (group-committed)
// transaction: all or none.
func (kv *KV) PutAll(puts []Put) error {
	vals := make([][]byte, len(puts))
	for i, p := range puts {
		vals[i] = p.El.Append(nil, "")
	}
	return kv.st.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(kv.bucket)
		if err != nil {
			return err
		}
		for i, p := range puts {
			if err := b.Put(p.Key, vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteUser removes every key of user (keys built with store.Key(user, …)).
func (kv *KV) DeleteUser(user string) error {
	prefix := store.Key(user, "")
	return kv.st.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(kv.bucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Seek(prefix) {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
