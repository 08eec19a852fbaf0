// Package xmlkv stores small XML payloads per account (vCards, private
// storage) in one bbolt bucket per module.
package xmlkv

import (
	"bytes"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// KV is one module's bucket. Keys start with the account's localpart and
// a zero byte (store.Key(user, …)).
type KV struct {
	st     *store.Store
	bucket []byte
	// kind and lim: when kind is set, every write is charged to the
	// account's storage budget (store.Charge) as key plus value bytes
	// and one item per key.
	kind string
	lim  store.Limit
}

// New returns the store for bucket.
func New(st *store.Store, bucket string) *KV { return &KV{st: st, bucket: []byte(bucket)} }

// accountedKey marks a bucket whose existing data was charged once; it
// starts with a zero byte, so no account's key (store.Key(user, …) with a
// non-empty user) can equal it or fall under its prefix.
var accountedKey = []byte("\x00accounted")

// NewCharged returns the store for bucket, charging each account's writes
// to its storage budget under kind, within lim. An empty element stored
// deletes the key (XEP-0049 has no delete; storing the empty element is
// how a client clears its data, and a get answers the empty element for a
// missing key anyway), so clearing frees the budget.
//
// Data written before accounting (by an older build) is charged once here,
// so a member who filled the bucket before the limit existed is over it
// and can only shrink. The KV is usable (and charges new writes) even when
// that first pass fails.
func NewCharged(st *store.Store, bucket, kind string, lim store.Limit) (*KV, error) {
	kv := &KV{st: st, bucket: []byte(bucket), kind: kind, lim: lim}
	err := st.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(kv.bucket)
		if err != nil {
			return err
		}
		if b.Get(accountedKey) != nil {
			return nil
		}
		used := map[string]store.Usage{}
		err = b.ForEach(func(k, v []byte) error {
			if u, ok := userOf(k); ok {
				x := used[u]
				x.Bytes += int64(len(k) + len(v))
				x.Items++
				used[u] = x
			}
			return nil
		})
		if err != nil {
			return err
		}
		// From scratch and without limits: this records what an older
		// build left uncharged, it does not refuse it.
		if err := store.ResetKind(tx, kind); err != nil {
			return err
		}
		for u, x := range used {
			if err := store.Charge(tx, u, kind, x.Bytes, x.Items, store.Limit{}); err != nil {
				return err
			}
		}
		return b.Put(accountedKey, []byte{1})
	})
	if err != nil {
		return kv, fmt.Errorf("xmlkv: account %s: %w", bucket, err)
	}
	return kv, nil
}

// userOf is the account a key belongs to.
func userOf(k []byte) (string, bool) {
	i := bytes.IndexByte(k, 0)
	if i <= 0 {
		return "", false
	}
	return string(k[:i]), true
}

// empty reports whether el carries no data: no attributes, no children,
// nothing but white space.
func empty(el *stream.Element) bool {
	if len(el.Attr) > 0 {
		return false
	}
	for _, n := range el.Nodes {
		if n.El != nil || strings.TrimSpace(n.Text) != "" {
			return false
		}
	}
	return true
}

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
// transaction: all or none. With a charged KV, a write that would take
// the account past its limit fails with store.ErrQuota and stores none.
func (kv *KV) PutAll(puts []Put) error {
	vals := make([][]byte, len(puts))
	for i, p := range puts {
		if kv.kind != "" && empty(p.El) {
			continue // nil: delete
		}
		vals[i] = p.El.Append(nil, "")
	}
	return kv.st.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(kv.bucket)
		if err != nil {
			return err
		}
		for i, p := range puts {
			if kv.kind != "" {
				if err := kv.charge(tx, b, p.Key, vals[i]); err != nil {
					return err
				}
			}
			if vals[i] == nil {
				if err := b.Delete(p.Key); err != nil {
					return err
				}
				continue
			}
			if err := b.Put(p.Key, vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// charge charges replacing key's value in b by val (nil: deleting it).
func (kv *KV) charge(tx *bolt.Tx, b *bolt.Bucket, key, val []byte) error {
	user, ok := userOf(key)
	if !ok {
		return fmt.Errorf("xmlkv: key %q names no account", key)
	}
	var dBytes, dItems int64
	if old := b.Get(key); old != nil {
		dBytes, dItems = -int64(len(key)+len(old)), -1
	}
	if val != nil {
		dBytes += int64(len(key) + len(val))
		dItems++
	}
	if dBytes == 0 && dItems == 0 {
		return nil
	}
	return store.Charge(tx, user, kv.kind, dBytes, dItems, kv.lim)
}

// DeleteUser removes every key of user (keys built with store.Key(user, …)).
func (kv *KV) DeleteUser(user string) error {
	prefix := store.Key(user, "")
	return kv.st.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(kv.bucket)
		if b == nil {
			return nil
		}
		var freed store.Usage
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Seek(prefix) {
			freed.Bytes += int64(len(k) + len(v))
			freed.Items++
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if kv.kind == "" || freed.Items == 0 {
			return nil
		}
		return store.Charge(tx, user, kv.kind, -freed.Bytes, -freed.Items, store.Limit{})
	})
}
