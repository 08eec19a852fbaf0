package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/sasl"
)

// Devices and FAST tokens (XEP-0484). A device is one client install, named
// by the user-agent id it sends with SASL2 (XEP-0388), with the software
// and device names it gives, so the admin pages can list a member's
// devices. Each device holds at most one FAST token, plus the one it
// replaced until the new one is used.
//
// At rest a token is never kept: HT-SHA-256-NONE's proof is the same on
// every use (sasl/ht.go), so the record holds the SHA-256 of that proof
// (enough to check it, useless to log in with) and the server's answer.
// Tokens die with the password: a record remembers a fingerprint of the
// account's salt, which SetPassword always renews, and a token whose
// fingerprint no longer matches is refused and dropped.

var bucketDevices = []byte("devices")

// FASTLifetime is how long a FAST token is valid. A token used in the
// second half of its life is renewed on that login.
const FASTLifetime = 14 * 24 * time.Hour

// MaxDevices bounds the devices kept per account; past it the one used
// least recently is forgotten (a client making up user-agent ids cannot
// grow the file).
const MaxDevices = 32

// lastUsedGrain is how stale a device's LastUsed may get before a login
// writes it: a login that changes nothing else then commits nothing (an
// fsync per login cost 5 ms on this machine's disk, more on an SD card).
const lastUsedGrain = time.Hour

// ErrFASTRefused is any token that does not log in: unknown, expired,
// replaced and then superseded, revoked, or issued under an old password.
var ErrFASTRefused = errors.New("store: fast token refused")

// Device is what the admin pages show of one of a member's clients.
type Device struct {
	ID       string    // the user-agent id (XEP-0388)
	Software string    // e.g. "Conversations"
	Device   string    // e.g. "Alice's phone"
	Created  time.Time // first login with this id
	LastUsed time.Time
	// TokenExpiry is when its FAST token expires (zero: it has none).
	TokenExpiry time.Time
}

type fastToken struct {
	Mech      string    `json:"mech"`
	Verifier  []byte    `json:"v"` // SHA-256 of the client's HT proof
	Responder []byte    `json:"r"` // the server's HT answer
	Expiry    time.Time `json:"exp"`
}

type deviceRec struct {
	Software string     `json:"sw,omitempty"`
	Device   string     `json:"dev,omitempty"`
	Created  time.Time  `json:"created"`
	LastUsed time.Time  `json:"used"`
	Acct     []byte     `json:"acct,omitempty"` // saltPrint when the tokens were issued
	Cur      *fastToken `json:"cur,omitempty"`
	Prev     *fastToken `json:"prev,omitempty"`
}

// saltPrint fingerprints user's current salt (nil: no account).
func saltPrint(tx *bolt.Tx, user string) []byte {
	b := tx.Bucket(bucketAccounts)
	if b == nil {
		return nil
	}
	v := b.Get([]byte(user))
	if v == nil {
		return nil
	}
	var a Account
	if json.Unmarshal(v, &a) != nil {
		return nil
	}
	h := sha256.Sum256(a.Salt)
	return h[:8]
}

func getDevice(b *bolt.Bucket, user, id string) *deviceRec {
	v := b.Get(Key(user, id))
	if v == nil {
		return nil
	}
	r := new(deviceRec)
	if json.Unmarshal(v, r) != nil {
		return nil
	}
	return r
}

func putDevice(b *bolt.Bucket, user, id string, r *deviceRec) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(Key(user, id), v)
}

// makeRoom forgets the least recently used devices of user until a new
// one fits.
func makeRoom(b *bolt.Bucket, user string) error {
	type kv struct {
		k    []byte
		used time.Time
	}
	var all []kv
	prefix := append([]byte(user), 0)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var r deviceRec
		json.Unmarshal(v, &r)
		all = append(all, kv{append([]byte(nil), k...), r.LastUsed})
	}
	if len(all) < MaxDevices {
		return nil
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	for _, e := range all[:len(all)-MaxDevices+1] {
		if err := b.Delete(e.k); err != nil {
			return err
		}
	}
	return nil
}

// device returns user's record for id, made (within MaxDevices) if new.
func device(b *bolt.Bucket, user, id string, now time.Time) (*deviceRec, error) {
	if r := getDevice(b, user, id); r != nil {
		return r, nil
	}
	if err := makeRoom(b, user); err != nil {
		return nil, err
	}
	return &deviceRec{Created: now}, nil
}

// SeenDevice records a login of user from the client with user-agent id
// (software and device as it named them; empty keeps the old names).
func (s *Store) SeenDevice(user, id, software, dev string, now time.Time) error {
	fresh := false
	s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketDevices); b != nil {
			r := getDevice(b, user, id)
			fresh = r != nil && (software == "" || software == r.Software) && (dev == "" || dev == r.Device) &&
				now.Sub(r.LastUsed) < lastUsedGrain && !now.Before(r.LastUsed)
		}
		return nil
	})
	if fresh {
		return nil
	}
	return s.db.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketDevices)
		if err != nil {
			return fmt.Errorf("store: devices: %w", err)
		}
		r, err := device(b, user, id, now)
		if err != nil {
			return err
		}
		if software != "" {
			r.Software = software
		}
		if dev != "" {
			r.Device = dev
		}
		r.LastUsed = now
		return putDevice(b, user, id, r)
	})
}

// IssueFAST makes a new FAST token for user's device id, bound to mech,
// and returns it with its expiry. The device's current token stays valid
// until the new one is used (XEP-0484: the client may never have received
// the new one).
func (s *Store) IssueFAST(user, id, mech string, now time.Time) (token string, expiry time.Time, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", time.Time{}, err
	}
	token = base64.RawURLEncoding.EncodeToString(raw)
	proof := sha256.Sum256(sasl.HTInitiator([]byte(token)))
	expiry = now.Add(FASTLifetime).UTC().Truncate(time.Second)
	t := &fastToken{Mech: mech, Verifier: proof[:], Responder: sasl.HTResponder([]byte(token)), Expiry: expiry}
	err = s.db.Batch(func(tx *bolt.Tx) error {
		acct := saltPrint(tx, user)
		if acct == nil {
			return ErrNotFound
		}
		b, err := tx.CreateBucketIfNotExists(bucketDevices)
		if err != nil {
			return fmt.Errorf("store: devices: %w", err)
		}
		r, err := device(b, user, id, now)
		if err != nil {
			return err
		}
		if r.Cur != nil && now.Before(r.Cur.Expiry) && bytes.Equal(r.Acct, acct) {
			r.Prev = r.Cur
		} else {
			r.Prev = nil
		}
		r.Cur, r.Acct, r.LastUsed = t, acct, now
		return putDevice(b, user, id, r)
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return token, expiry, nil
}

// UseFAST checks an HT proof for user's device id and returns the server's
// answer. renew says the client should get a new token on this login: its
// token is in the second half of its life, or it used the one a newer
// token replaced. Using the newer token ends the older one; using the
// older one ends it too (valid once more, no more): a replay of either
// after that is refused. The change is committed before the answer.
func (s *Store) UseFAST(user, id, mech string, proof []byte, now time.Time) (responder []byte, renew bool, err error) {
	h := sha256.Sum256(proof)
	match := func(t *fastToken) bool {
		return t != nil && t.Mech == mech && now.Before(t.Expiry) && subtle.ConstantTimeCompare(t.Verifier, h[:]) == 1
	}
	// The usual login (the current token, nothing replaced, used lately)
	// changes nothing: checked read-only, without a commit.
	done := false
	s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		if b == nil {
			return nil
		}
		r := getDevice(b, user, id)
		if r == nil || r.Prev != nil || !match(r.Cur) || now.Sub(r.LastUsed) >= lastUsedGrain || now.Before(r.LastUsed) {
			return nil
		}
		if acct := saltPrint(tx, user); acct != nil && bytes.Equal(acct, r.Acct) {
			responder, renew, done = r.Cur.Responder, r.Cur.Expiry.Sub(now) < FASTLifetime/2, true
		}
		return nil
	})
	if done {
		return responder, renew, nil
	}
	err = s.db.Batch(func(tx *bolt.Tx) error {
		responder, renew = nil, false
		b := tx.Bucket(bucketDevices)
		if b == nil {
			return ErrFASTRefused
		}
		r := getDevice(b, user, id)
		if r == nil || r.Cur == nil {
			return ErrFASTRefused
		}
		if acct := saltPrint(tx, user); acct == nil || !bytes.Equal(acct, r.Acct) {
			// The password changed (or the account went) since issue.
			r.Cur, r.Prev, r.Acct = nil, nil, nil
			return putDevice(b, user, id, r)
		}
		switch {
		case match(r.Cur):
			responder = r.Cur.Responder
			renew = r.Cur.Expiry.Sub(now) < FASTLifetime/2
			r.Prev = nil
		case match(r.Prev):
			// The client never got Cur: this login renews, and Cur
			// (never delivered) must not become the next "previous".
			responder, renew = r.Prev.Responder, true
			r.Prev, r.Cur = nil, nil
		default:
			return nil
		}
		r.LastUsed = now
		return putDevice(b, user, id, r)
	})
	if err == nil && responder == nil {
		err = ErrFASTRefused
	}
	if err != nil {
		return nil, false, err
	}
	return responder, renew, nil
}

// RevokeFAST ends the tokens of user's device id (the client logged out
// with XEP-0484's invalidate, or an admin revoked it). The device stays
// listed.
func (s *Store) RevokeFAST(user, id string) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		if b == nil {
			return nil
		}
		r := getDevice(b, user, id)
		if r == nil {
			return nil
		}
		r.Cur, r.Prev, r.Acct = nil, nil, nil
		return putDevice(b, user, id, r)
	})
}

// RevokeAllFAST ends every FAST token of user (an admin's "log out all
// devices"); the devices stay listed. A password change needs no call:
// it ends them by itself.
func (s *Store) RevokeAllFAST(user string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		if b == nil {
			return nil
		}
		prefix := append([]byte(user), 0)
		var ids []string
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			ids = append(ids, string(k[len(prefix):]))
		}
		for _, id := range ids {
			r := getDevice(b, user, id)
			if r == nil || (r.Cur == nil && r.Prev == nil) {
				continue
			}
			r.Cur, r.Prev, r.Acct = nil, nil, nil
			if err := putDevice(b, user, id, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteDevices forgets every device and token of user (account deleted).
func (s *Store) DeleteDevices(user string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		if b == nil {
			return nil
		}
		prefix := append([]byte(user), 0)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Devices lists user's devices, most recently used first. A token issued
// under an older password is not shown (it no longer logs in).
func (s *Store) Devices(user string) ([]Device, error) {
	var out []Device
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		if b == nil {
			return nil
		}
		acct := saltPrint(tx, user)
		prefix := append([]byte(user), 0)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r deviceRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("store: device %q: %w", k, err)
			}
			d := Device{ID: string(k[len(prefix):]), Software: r.Software, Device: r.Device, Created: r.Created, LastUsed: r.LastUsed}
			if r.Cur != nil && acct != nil && bytes.Equal(acct, r.Acct) {
				d.TokenExpiry = r.Cur.Expiry
			}
			out = append(out, d)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.After(out[j].LastUsed) })
	return out, err
}
