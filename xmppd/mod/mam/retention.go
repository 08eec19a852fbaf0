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
// reports how many went. The journal is merged first: its records are
// seconds old, but a retention that short must see them too.
func (m *mod) sweep(cutoff uint64) (int, error) {
	if err := m.merge(); err != nil {
		return 0, fmt.Errorf("mam: retention: %w", err)
	}
	var deleted int
	var next []byte
	from := m.sweeper.next
	err := m.srv.Store.Batch(func(tx *bolt.Tx) error {
		deleted, next = 0, nil // Batch may run this again
		b := tx.Bucket(bucketMsgs)
		if b == nil {
			return nil
		}
		// The accounts of this tick, from where the last one stopped.
		var users []string
		c := b.Cursor()
		k, _ := c.Seek(from)
		if from == nil {
			k, _ = c.First()
		}
		for k != nil && len(users) < sweepUsers {
			i := bytes.IndexByte(k, 0)
			if i < 0 || len(k) != i+9 {
				k, _ = c.Next() // not a key of ours: step over it
				continue
			}
			users = append(users, string(k[:i]))
			// The next account: past every key of this one.
			k, _ = c.Seek(append(slices.Clone(k[:i]), 1))
		}
		if k != nil {
			next = slices.Clone(k)
		}
		budget := sweepRecords
		for _, user := range users {
			n, size, err := trimFront(b, user, budget, func(r record) bool { return r.id < cutoff })
			if err != nil {
				return err
			}
			if n > 0 {
				if err := store.Charge(tx, user, Kind, -size, -int64(n), store.Limit{}); err != nil {
					return err
				}
			}
			deleted += n
			budget -= n
			if budget == 0 {
				next = userPrefix(user) // this account may have more: start here next tick
				break
			}
		}
		return expireJournal(tx, cutoff, sweepRecords)
	})
	if err != nil {
		return 0, fmt.Errorf("mam: retention: %w", err)
	}
	m.sweeper.next = next
	return deleted, nil
}

// expireJournal deletes up to limit merged journal values, oldest first,
// whose messages are all older than cutoff: the XML of merged records
// lives there (journal.go). Their records may still be in segments whose
// sweep has not come yet; readers take such a record as swept.
func expireJournal(tx *bolt.Tx, cutoff uint64, limit int) error {
	j := tx.Bucket(bucketJournal)
	if j == nil {
		return nil
	}
	merged := mergedUpTo(tx)
	var dels [][]byte
	c := j.Cursor()
	for k, v := c.First(); k != nil && len(dels) < limit; k, v = c.Next() {
		if len(k) != 8 || binary.BigEndian.Uint64(k) > merged {
			break
		}
		newest := uint64(0)
		err := decodeJournalWith(k, v, nil, func([]byte) string { return "" }, func(_ []byte, r record) {
			newest = max(newest, r.id)
		})
		if err == nil && newest >= cutoff {
			break // values are in commit order: the rest are newer
		}
		dels = append(dels, slices.Clone(k))
	}
	for _, k := range dels {
		if err := j.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// forgetJournal takes user out of the merged journal values (account
// deletion): user's party entries go, and a message whose remaining
// parties are no existing accounts loses its XML too (a message an
// existing account archived stays until retention: it is that account's
// record as well). Messages keep their place in the value, so the other
// parties' references (segment.go) stay right. A chunk of values per
// transaction; every value is read, an account deletion being rare.
func (m *mod) forgetJournal(user string) error {
	var from uint64 = 1
	for from != 0 {
		err := m.srv.Store.Update(func(tx *bolt.Tx) error {
			j := tx.Bucket(bucketJournal)
			if j == nil {
				from = 0
				return nil
			}
			merged := mergedUpTo(tx)
			type rewrite struct {
				k, v []byte
			}
			var rws []rewrite
			next := uint64(0)
			n := 0
			c := j.Cursor()
			for k, v := c.Seek(store.U64(from)); k != nil; k, v = c.Next() {
				if len(k) != 8 || binary.BigEndian.Uint64(k) > merged {
					break
				}
				if n == deleteChunk {
					next = binary.BigEndian.Uint64(k)
					break
				}
				n++
				msgs, err := decodeJournalValue(v)
				if err != nil {
					continue
				}
				changed := false
				for i := range msgs {
					es := msgs[i].entries
					keep := es[:0]
					for _, e := range es {
						if e.user != user {
							keep = append(keep, e)
						}
					}
					if len(keep) == len(es) {
						continue
					}
					changed = true
					msgs[i].entries = keep
					if !slices.ContainsFunc(keep, func(e jEntry) bool { return store.AccountExistsTx(tx, e.user) }) {
						msgs[i].entries, msgs[i].xml = nil, nil
					}
				}
				if changed {
					nv := make([]byte, journalHeader)
					nv[0] = journalVersion
					var bloom uint64
					for _, jm := range msgs {
						nv = appendJMsg(nv, jm)
						for _, e := range jm.entries {
							bloom |= userBits(e.user)
						}
					}
					binary.BigEndian.PutUint64(nv[1:journalHeader], bloom)
					rws = append(rws, rewrite{slices.Clone(k), nv})
				}
			}
			for _, rw := range rws {
				if err := j.Put(rw.k, rw.v); err != nil {
					return err
				}
			}
			from = next
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteUser removes user's archive and preferences (account deletion),
// a chunk per transaction, after merging the journal into it.
func (m *mod) deleteUser(user string) error {
	if err := m.merge(); err != nil {
		return fmt.Errorf("mam: delete archive of %s: %w", user, err)
	}
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
			cnt, size, err := trimFront(b, user, deleteChunk, func(record) bool { return true })
			if err != nil {
				return err
			}
			n = cnt
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
			break
		}
	}
	if err := m.forgetJournal(user); err != nil {
		return fmt.Errorf("mam: delete archive of %s: %w", user, err)
	}
	return nil
}
