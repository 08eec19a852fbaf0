package pep

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

var bucket = []byte("pep")

// Keys: a node's meta (configuration and item order) under
// Key(user, "m", node), each item under Key(user, "i", node, id). XML
// forbids the zero byte in names and ids, so prefixes cannot collide.
func metaKey(user, node string) []byte     { return store.Key(user, "m", node) }
func itemKey(user, node, id string) []byte { return store.Key(user, "i", node, id) }

// meta is a node's stored record.
type meta struct {
	C     config   `json:"c"`
	Items []string `json:"i"` // item ids, oldest first
}

type db struct{ st *store.Store }

var errNoNode = errors.New("pep: no such node")

// tx helpers ---------------------------------------------------------------

// put writes k=v in b, charging the difference to user's budget first.
func put(tx *bolt.Tx, b *bolt.Bucket, user string, k, v []byte) error {
	d, n := int64(len(k)+len(v)), int64(1)
	if old := b.Get(k); old != nil {
		d -= int64(len(k) + len(old))
		n = 0
	}
	if err := store.Charge(tx, user, Kind, d, n, store.Limit{Bytes: MaxBytes}); err != nil {
		return err
	}
	return b.Put(k, v)
}

func del(tx *bolt.Tx, b *bolt.Bucket, user string, k []byte) error {
	old := b.Get(k)
	if old == nil {
		return nil
	}
	if err := store.Charge(tx, user, Kind, -int64(len(k)+len(old)), -1, store.Limit{}); err != nil {
		return err
	}
	return b.Delete(k)
}

func getMeta(b *bolt.Bucket, user, node string) (*meta, error) {
	v := b.Get(metaKey(user, node))
	if v == nil {
		return nil, nil
	}
	m := new(meta)
	if err := json.Unmarshal(v, m); err != nil {
		return nil, fmt.Errorf("pep: node %q of %s: %w", node, user, err)
	}
	return m, nil
}

func putMeta(tx *bolt.Tx, b *bolt.Bucket, user, node string, m *meta) error {
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return put(tx, b, user, metaKey(user, node), v)
}

// trim drops the oldest items beyond keep.
func trim(tx *bolt.Tx, b *bolt.Bucket, user, node string, m *meta, keep int) error {
	for len(m.Items) > keep {
		if err := del(tx, b, user, itemKey(user, node, m.Items[0])); err != nil {
			return err
		}
		m.Items = m.Items[1:]
	}
	return nil
}

// nodeCount counts user's nodes (at most MaxNodes+1 are looked at).
func nodeCount(b *bolt.Bucket, user string) int {
	p := store.Key(user, "m", "")
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p) && n <= MaxNodes; k, _ = c.Next() {
		n++
	}
	return n
}

// operations ---------------------------------------------------------------

// publish stores item on node (creating it with opts applied when it does
// not exist, else checking opts as preconditions) and returns the node's
// configuration. fields is nil without publish-options.
func (d *db) publish(user, node string, fields map[string][]string, item *stream.Element) (config, error) {
	var cfg config
	err := d.nodeBatch(user, node, func(tx *bolt.Tx, b *bolt.Bucket, m *meta) (err error) {
		cfg, err = publishTx(tx, b, user, node, m, fields, item)
		return err
	})
	return cfg, err
}

// nodeBatch runs fn in a write transaction with the PEP bucket and node's
// meta (nil: no such node yet).
func (d *db) nodeBatch(user, node string, fn func(tx *bolt.Tx, b *bolt.Bucket, m *meta) error) error {
	return d.st.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		m, err := getMeta(b, user, node)
		if err != nil {
			return err
		}
		return fn(tx, b, m)
	})
}

// publishTx is publish in tx; m is node's meta (nil: none yet).
func publishTx(tx *bolt.Tx, b *bolt.Bucket, user, node string, m *meta, fields map[string][]string, item *stream.Element) (config, error) {
	raw := item.Append(nil, "")
	id := item.Get("id")
	if m == nil {
		if nodeCount(b, user) >= MaxNodes {
			return config{}, errTooManyNodes
		}
		c, err := defaultConfig().apply(fields)
		if err != nil {
			return config{}, err
		}
		m = &meta{C: c}
	} else if fields != nil {
		c, err := m.C.apply(fields)
		if err != nil || !c.equal(m.C) {
			// XEP-0060 §7.1.5: the node exists and is configured
			// otherwise (or the option is one we do not have).
			return config{}, errPrecondition
		}
	}
	cfg := m.C
	if cfg.keep() > 0 {
		m.Items = slices.DeleteFunc(m.Items, func(s string) bool { return s == id })
		m.Items = append(m.Items, id)
		if err := put(tx, b, user, itemKey(user, node, id), raw); err != nil {
			return cfg, err
		}
		if err := trim(tx, b, user, node, m, cfg.keep()); err != nil {
			return cfg, err
		}
	}
	return cfg, putMeta(tx, b, user, node, m)
}

// offerKey records that the server offered user item id of node once
// (OfferBookmark): Key(user, "o", node, id).
func offerKey(user, node, id string) []byte { return store.Key(user, "o", node, id) }

// offered reports whether item id of node was offered to user before.
func (d *db) offered(user, node, id string) (bool, error) {
	var ok bool
	err := d.st.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket); b != nil {
			ok = b.Get(offerKey(user, node, id)) != nil
		}
		return nil
	})
	return ok, err
}

// offer publishes item on user's node (created with fields if missing)
// unless it was offered before, records the offer, and reports whether
// it published. An item with the same id is kept as it is (the member's
// own), and so is the node when the item would push out one of the
// member's (a node full at its max_items). Offer and publish are one
// transaction: a crash leaves neither or both.
func (d *db) offer(user, node string, fields map[string][]string, item *stream.Element) (cfg config, published bool, err error) {
	id := item.Get("id")
	err = d.st.Batch(func(tx *bolt.Tx) error {
		published = false
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		k := offerKey(user, node, id)
		if b.Get(k) != nil {
			return nil
		}
		if err := put(tx, b, user, k, []byte{1}); err != nil {
			return err
		}
		m, err := getMeta(b, user, node)
		if err != nil {
			return err
		}
		if m != nil && (slices.Contains(m.Items, id) || len(m.Items) >= m.C.keep()) {
			return nil
		}
		if m != nil {
			fields = nil // the member's configuration stands
		}
		if cfg, err = publishTx(tx, b, user, node, m, fields, item); err != nil {
			return err
		}
		published = true
		return nil
	})
	return cfg, published, err
}

// create makes node with fields applied; it fails with errConflict when
// it exists.
func (d *db) create(user, node string, fields map[string][]string) error {
	return d.nodeBatch(user, node, func(tx *bolt.Tx, b *bolt.Bucket, m *meta) error {
		if m != nil {
			return errConflict
		}
		if nodeCount(b, user) >= MaxNodes {
			return errTooManyNodes
		}
		c, err := defaultConfig().apply(fields)
		if err != nil {
			return err
		}
		return putMeta(tx, b, user, node, &meta{C: c})
	})
}

// update runs fn on node's meta in a write transaction and stores the
// result; fn may delete items through the helpers.
func (d *db) update(user, node string, fn func(tx *bolt.Tx, b *bolt.Bucket, m *meta) error) (config, error) {
	var cfg config
	err := d.nodeBatch(user, node, func(tx *bolt.Tx, b *bolt.Bucket, m *meta) error {
		if m == nil {
			return errNoNode
		}
		if err := fn(tx, b, m); err != nil {
			return err
		}
		cfg = m.C
		return putMeta(tx, b, user, node, m)
	})
	return cfg, err
}

// deleteNode removes node and its items.
func (d *db) deleteNode(user, node string) (config, error) {
	var cfg config
	err := d.nodeBatch(user, node, func(tx *bolt.Tx, b *bolt.Bucket, m *meta) error {
		if m == nil {
			return errNoNode
		}
		cfg = m.C
		if err := trim(tx, b, user, node, m, 0); err != nil {
			return err
		}
		return del(tx, b, user, metaKey(user, node))
	})
	return cfg, err
}

// node reads node's meta and, for ids (or the latest max when ids is
// empty; max 0: all), its items in publish order.
func (d *db) node(user, node string, ids []string, max int) (*meta, []*stream.Element, error) {
	var m *meta
	var raws [][]byte
	err := d.st.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		var err error
		if m, err = getMeta(b, user, node); err != nil || m == nil {
			return err
		}
		want := m.Items
		if len(ids) > 0 {
			want = slices.DeleteFunc(slices.Clone(m.Items), func(s string) bool { return !slices.Contains(ids, s) })
		} else if max > 0 && len(want) > max {
			want = want[len(want)-max:]
		}
		for _, id := range want {
			if v := b.Get(itemKey(user, node, id)); v != nil {
				raws = append(raws, bytes.Clone(v))
			}
		}
		return nil
	})
	if err != nil || m == nil {
		return m, nil, err
	}
	items := make([]*stream.Element, 0, len(raws))
	for _, r := range raws {
		el, err := stream.ParseElement(r)
		if err != nil {
			return nil, nil, fmt.Errorf("pep: item of %s on %q: %w", user, node, err)
		}
		items = append(items, el)
	}
	return m, items, nil
}

// nodes lists user's node names with their meta.
func (d *db) nodes(user string) (map[string]*meta, error) {
	out := map[string]*meta{}
	p := store.Key(user, "m", "")
	err := d.st.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			m := new(meta)
			if err := json.Unmarshal(v, m); err != nil {
				return fmt.Errorf("pep: node of %s: %w", user, err)
			}
			out[string(k[len(p):])] = m
		}
		return nil
	})
	return out, err
}

// deleteUser removes every node of user.
func (d *db) deleteUser(user string) error {
	p := store.Key(user, "")
	return d.st.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Seek(p) {
			if err := del(tx, b, user, bytes.Clone(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// retract removes item id from node.
func (d *db) retract(user, node, id string) (config, error) {
	return d.update(user, node, func(tx *bolt.Tx, b *bolt.Bucket, mt *meta) error {
		if !slices.Contains(mt.Items, id) {
			return errNoItem
		}
		mt.Items = slices.DeleteFunc(mt.Items, func(s string) bool { return s == id })
		return del(tx, b, user, itemKey(user, node, id))
	})
}
