package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Per-account storage budget. bbolt never gives pages back to the file
// system, so one member who fills the database costs the whole box its SD
// card for good: every store a member can write to (private XML, roster,
// offline messages, and later archive, PEP, uploads) charges what it keeps
// to the member's budget, inside the same transaction as the write, and a
// write that would go past a limit is refused (the module answers
// resource-constraint) before anything is stored.
//
// Usage is kept in the "usage" bucket under Key(user, kind) as 16 bytes:
// bytes, items (big-endian), and the account's total under Key(user, "").

var bucketUsage = []byte("usage")

// ErrQuota is returned (wrapped) when a write would exceed a limit.
var ErrQuota = errors.New("storage quota exceeded")

// Limit bounds one kind of data of one account. Zero means "no limit" for
// that dimension.
type Limit struct {
	Bytes int64
	Items int64
}

// AccountBytes bounds everything one account keeps, all kinds together.
// 256 MiB leaves room for uploads later; each kind has its own, smaller
// limit on top.
const AccountBytes = 256 << 20

// Usage is what one account keeps of one kind.
type Usage struct {
	Bytes int64
	Items int64
}

// Charge adds dBytes and dItems (either may be negative) to user's usage of
// kind and to the account's total, inside tx. A charge that would take the
// kind past lim, or the account past AccountBytes, fails with ErrQuota and
// changes nothing; a dimension that does not grow is never refused, so
// freeing always succeeds, also for an account already over a limit that
// a newer build lowered.
//
// The caller must return Charge's error from its transaction (or charge
// before it writes anything), so that a refused write leaves no data
// behind either.
func Charge(tx *bolt.Tx, user, kind string, dBytes, dItems int64, lim Limit) error {
	if kind == "" {
		return errors.New("store: charge without a kind")
	}
	b, err := tx.CreateBucketIfNotExists(bucketUsage)
	if err != nil {
		return fmt.Errorf("store: usage bucket: %w", err)
	}
	kk, tk := Key(user, kind), Key(user, "")
	u, t := decodeUsage(b.Get(kk)), decodeUsage(b.Get(tk))
	// A kind never goes below zero (a record freed twice, data from before
	// accounting); the total moves by what the kind actually moved, so it
	// stays the sum of the kinds.
	nu := Usage{max(u.Bytes+dBytes, 0), max(u.Items+dItems, 0)}
	dBytes, dItems = nu.Bytes-u.Bytes, nu.Items-u.Items
	nt := Usage{max(t.Bytes+dBytes, 0), max(t.Items+dItems, 0)}
	if dBytes > 0 && lim.Bytes > 0 && nu.Bytes > lim.Bytes || dItems > 0 && lim.Items > 0 && nu.Items > lim.Items {
		return fmt.Errorf("%w: %s of %s: %d bytes, %d items (limit %d bytes, %d items)",
			ErrQuota, kind, user, nu.Bytes, nu.Items, lim.Bytes, lim.Items)
	}
	if dBytes > 0 && nt.Bytes > AccountBytes {
		return fmt.Errorf("%w: %s keeps %d bytes in all (limit %d)", ErrQuota, user, nt.Bytes, int64(AccountBytes))
	}
	if err := putUsage(b, kk, nu); err != nil {
		return err
	}
	return putUsage(b, tk, nt)
}

// putUsage stores u under k; an empty record is deleted, so that freeing
// everything (and the account-deletion hooks that run after forgetUsage)
// leaves nothing behind.
func putUsage(b *bolt.Bucket, k []byte, u Usage) error {
	if u == (Usage{}) {
		return b.Delete(k)
	}
	return b.Put(k, encodeUsage(u))
}

// UsageOf reads user's usage of kind ("" for the account's total) in tx.
func UsageOf(tx *bolt.Tx, user, kind string) Usage {
	b := tx.Bucket(bucketUsage)
	if b == nil {
		return Usage{}
	}
	return decodeUsage(b.Get(Key(user, kind)))
}

// Usage returns user's usage per kind; the key "" is the total.
func (s *Store) Usage(user string) (map[string]Usage, error) {
	out := map[string]Usage{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsage)
		if b == nil {
			return nil
		}
		prefix := append([]byte(user), 0)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			out[string(k[len(prefix):])] = decodeUsage(v)
		}
		return nil
	})
	return out, err
}

// ResetKind takes back every account's charge of kind (each account's total
// drops by it), for a module that recounts what it keeps from scratch
// (data an older build wrote without charging).
func ResetKind(tx *bolt.Tx, kind string) error {
	if kind == "" {
		return errors.New("store: reset without a kind")
	}
	b := tx.Bucket(bucketUsage)
	if b == nil {
		return nil
	}
	held := map[string]Usage{}
	err := b.ForEach(func(k, v []byte) error {
		if user, kd, ok := strings.Cut(string(k), "\x00"); ok && kd == kind {
			held[user] = decodeUsage(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for user, u := range held {
		if err := Charge(tx, user, kind, -u.Bytes, -u.Items, Limit{}); err != nil {
			return err
		}
	}
	return nil
}

// forgetUsage removes every usage record of user (account deletion).
func forgetUsage(tx *bolt.Tx, user string) error {
	b := tx.Bucket(bucketUsage)
	if b == nil {
		return nil
	}
	prefix := append([]byte(user), 0)
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, _ = c.Seek(prefix) {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func decodeUsage(v []byte) Usage {
	if len(v) != 16 {
		return Usage{}
	}
	return Usage{int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))}
}

func encodeUsage(u Usage) []byte {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, uint64(u.Bytes))
	binary.BigEndian.PutUint64(v[8:], uint64(u.Items))
	return v
}
