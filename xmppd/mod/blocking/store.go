package blocking

import (
	"bytes"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

var bucket = []byte("blocklist")

// load reads every list into memory (at start: a list is at most
// MaxItems short strings, and only members who block anyone have one).
func (m *mod) load() error {
	lists := map[string]map[string]bool{}
	err := m.srv.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			user, j, ok := bytes.Cut(k, []byte{0})
			if !ok {
				return nil
			}
			l := lists[string(user)]
			if l == nil {
				l = map[string]bool{}
				lists[string(user)] = l
			}
			l[string(j)] = true
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("blocking: read lists: %w", err)
	}
	m.mu.Lock()
	m.lists = lists
	m.mu.Unlock()
	return nil
}

// list returns user's blocked JIDs, sorted.
func (m *mod) list(user string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.lists[user]))
	for j := range m.lists[user] {
		out = append(out, j)
	}
	slices.Sort(out)
	return out
}

// cost is what one item is charged: its key and bbolt's per-item
// overhead (a leaf element is 16 bytes).
func cost(user, j string) int64 { return int64(len(user) + 1 + len(j) + 16) }

// add stores the jids not yet on user's list, charging them, durably
// before it returns, and returns them. Called with wmu held.
func (m *mod) add(user string, jids []string) ([]string, error) {
	m.mu.RLock()
	var added []string
	for _, j := range jids {
		if !m.lists[user][j] {
			added = append(added, j)
		}
	}
	m.mu.RUnlock()
	if len(added) == 0 {
		return nil, nil
	}
	err := m.srv.Store.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		var bytes int64
		for _, j := range added {
			bytes += cost(user, j)
		}
		if err := store.Charge(tx, user, Kind, bytes, int64(len(added)), store.Limit{Bytes: MaxBytes, Items: MaxItems}); err != nil {
			return err
		}
		for _, j := range added {
			if err := b.Put(store.Key(user, j), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blocking: store %d items of %s: %w", len(added), user, err)
	}
	m.mu.Lock()
	l := m.lists[user]
	if l == nil {
		l = map[string]bool{}
		m.lists[user] = l
	}
	for _, j := range added {
		l[j] = true
	}
	m.mu.Unlock()
	return added, nil
}

// remove deletes the jids that are on user's list and returns them.
// Called with wmu held.
func (m *mod) remove(user string, jids []string) ([]string, error) {
	m.mu.RLock()
	var gone []string
	for _, j := range jids {
		if m.lists[user][j] {
			gone = append(gone, j)
		}
	}
	m.mu.RUnlock()
	if len(gone) == 0 {
		return nil, nil
	}
	err := m.srv.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		var bytes int64
		for _, j := range gone {
			if err := b.Delete(store.Key(user, j)); err != nil {
				return err
			}
			bytes += cost(user, j)
		}
		return store.Charge(tx, user, Kind, -bytes, -int64(len(gone)), store.Limit{})
	})
	if err != nil {
		return nil, fmt.Errorf("blocking: remove %d items of %s: %w", len(gone), user, err)
	}
	m.mu.Lock()
	for _, j := range gone {
		delete(m.lists[user], j)
	}
	if len(m.lists[user]) == 0 {
		delete(m.lists, user)
	}
	m.mu.Unlock()
	return gone, nil
}

// deleteUser removes a deleted account's list (its usage records went
// with the account).
func (m *mod) deleteUser(user string) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	err := m.srv.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		p := store.Key(user, "")
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			keys = append(keys, slices.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.srv.Log.Error("blocking: delete list", "user", user, "err", err)
	}
	m.mu.Lock()
	delete(m.lists, user)
	m.mu.Unlock()
}
