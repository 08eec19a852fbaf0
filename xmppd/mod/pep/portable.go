package pep

// Transaction-level access for xmppd/portable (XEP-0227 export and
// import), on the bucket, keys and charges the module's store uses.

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// EachNodeTx calls fn with each of user's nodes: its name, its
// configuration as a pubsub#node_config form and its items (raw XML of
// each <item/>) oldest first.
func EachNodeTx(tx *bolt.Tx, user string, fn func(node string, form *stream.Element, items [][]byte) error) error {
	b := tx.Bucket(bucket)
	if b == nil {
		return nil
	}
	p := store.Key(user, "m", "")
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		node := string(k[len(p):])
		m := new(meta)
		if err := json.Unmarshal(v, m); err != nil {
			return fmt.Errorf("pep: node %q of %s: %w", node, user, err)
		}
		items := make([][]byte, 0, len(m.Items))
		for _, id := range m.Items {
			if raw := b.Get(itemKey(user, node, id)); raw != nil {
				items = append(items, raw)
			}
		}
		if err := fn(node, m.C.form(), items); err != nil {
			return err
		}
	}
	return nil
}

// ImportNodeTx creates user's node (configured by form, a node_config
// data form or nil; fields this service does not have are skipped one by
// one, since another server's export names its own) and publishes items
// (<item id='…'/> elements) in order, within the PEP limits. It reports
// the fields skipped.
func ImportNodeTx(tx *bolt.Tx, user, node string, form *stream.Element, items []*stream.Element) (skipped []string, err error) {
	if node == "" {
		return nil, fmt.Errorf("pep: node without a name")
	}
	b, err := tx.CreateBucketIfNotExists(bucket)
	if err != nil {
		return nil, err
	}
	m, err := getMeta(b, user, node)
	if err != nil {
		return nil, err
	}
	c := defaultConfig()
	if m != nil {
		c = m.C
	} else if nodeCount(b, user) >= MaxNodes {
		return nil, errTooManyNodes
	}
	if form != nil {
		fields, ok := formFields(form)
		if !ok {
			return nil, fmt.Errorf("pep: node %q: malformed configuration form", node)
		}
		for k, v := range fields {
			if d, err := c.apply(map[string][]string{k: v}); err == nil {
				c = d
			} else {
				skipped = append(skipped, k)
			}
		}
	}
	if m == nil {
		m = &meta{}
	}
	m.C = c
	if err := putMeta(tx, b, user, node, m); err != nil {
		return skipped, err
	}
	for _, it := range items {
		if it.Get("id") == "" {
			return skipped, fmt.Errorf("pep: node %q: an item without an id", node)
		}
		if _, err := publishTx(tx, b, user, node, m, nil, it); err != nil {
			return skipped, fmt.Errorf("pep: node %q item %q: %w", node, it.Get("id"), err)
		}
	}
	return skipped, nil
}
