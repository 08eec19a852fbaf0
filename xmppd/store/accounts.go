package store

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/sasl"
)

var bucketAccounts = []byte("accounts")

// ErrExists and ErrNotFound are returned by account operations.
var (
	ErrExists   = errors.New("account exists")
	ErrNotFound = errors.New("no such account")
)

// ScramIterations is the PBKDF2 cost (xmppd/sasl owns the SCRAM maths).
const ScramIterations = sasl.Iterations

// ScramKeys are the verifiers for one hash: never the password itself.
type ScramKeys = sasl.Keys

// Account is one user's stored record.
type Account struct {
	Salt    []byte    `json:"salt"`
	Iter    int       `json:"iter"`
	SHA1    ScramKeys `json:"sha1"`
	SHA256  ScramKeys `json:"sha256"`
	Admin   bool      `json:"admin,omitempty"`
	Created time.Time `json:"created"`
}

// Credentials are the account's verifiers as the SCRAM server reads them.
func (a *Account) Credentials() *sasl.Credentials {
	return &sasl.Credentials{Salt: a.Salt, Iter: a.Iter, SHA1: a.SHA1, SHA256: a.SHA256}
}

func newAccount(password string, admin bool) (*Account, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	a := &Account{Salt: salt, Iter: ScramIterations, Admin: admin, Created: time.Now().UTC()}
	var err1, err2 error
	a.SHA1, err1 = sasl.Derive(sha1.New, password, salt, ScramIterations)
	a.SHA256, err2 = sasl.Derive(sha256.New, password, salt, ScramIterations)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("store: scram verifiers: %w", err)
	}
	return a, nil
}

// CreateAccount stores a new account. user must already be a normalized
// localpart.
func (s *Store) CreateAccount(user, password string, admin bool) error {
	return s.db.Update(func(tx *bolt.Tx) error { return CreateAccountTx(tx, user, password, admin) })
}

// CreateAccountTx creates an account inside a caller's transaction (so that
// redeeming an invite and creating the account commit together).
func CreateAccountTx(tx *bolt.Tx, user, password string, admin bool) error {
	if user == "" || password == "" {
		return errors.New("store: empty user name or password")
	}
	a, err := newAccount(password, admin)
	if err != nil {
		return err
	}
	v, _ := json.Marshal(a)
	b, err := tx.CreateBucketIfNotExists(bucketAccounts)
	if err != nil {
		return err
	}
	if b.Get([]byte(user)) != nil {
		return fmt.Errorf("store: %s: %w", user, ErrExists)
	}
	return b.Put([]byte(user), v)
}

// SetPassword replaces an account's verifiers.
func (s *Store) SetPassword(user, password string) error {
	old, err := s.Account(user)
	if err != nil {
		return err
	}
	a, err := newAccount(password, old.Admin)
	if err != nil {
		return err
	}
	a.Created = old.Created
	v, _ := json.Marshal(a)
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAccounts)
		if err != nil {
			return err
		}
		return b.Put([]byte(user), v)
	})
}

// CompleteVerifiers checks password against an account that has only
// SCRAM-SHA-1 verifiers — imported from a server that keeps no others, as
// Prosody does (xmppd/portable) — and, when it matches, adds the
// SCRAM-SHA-256 verifiers from the same salt and iteration count. Such an
// account logs in with SCRAM-SHA-1 only, and most apps pick SCRAM-SHA-256
// when offered: one login where the box sees the password (the web pages)
// completes it. ok reports whether the password matched; an account that
// has SHA-256 verifiers already is left alone (ok false: the caller checks
// those).
func (s *Store) CompleteVerifiers(user, password string) (ok bool, err error) {
	a, err := s.Account(user)
	if err != nil || len(a.SHA256.StoredKey) > 0 || len(a.SHA1.StoredKey) == 0 {
		return false, err
	}
	k1, err := sasl.Derive(sha1.New, password, a.Salt, a.Iter)
	if err != nil || subtle.ConstantTimeCompare(k1.StoredKey, a.SHA1.StoredKey) != 1 {
		return false, err
	}
	k256, err := sasl.Derive(sha256.New, password, a.Salt, a.Iter)
	if err != nil {
		return true, err
	}
	return true, s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		v := b.Get([]byte(user))
		if v == nil {
			return ErrNotFound
		}
		var cur Account
		if err := json.Unmarshal(v, &cur); err != nil {
			return fmt.Errorf("store: account %s: %w", user, err)
		}
		if len(cur.SHA256.StoredKey) > 0 || !slicesEqual(cur.SHA1.StoredKey, a.SHA1.StoredKey) {
			return nil // changed meanwhile (a new password): leave it
		}
		cur.SHA256 = k256
		nv, _ := json.Marshal(&cur)
		return b.Put([]byte(user), nv)
	})
}

func slicesEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// SetAdmin grants or takes away user's admin rights.
func (s *Store) SetAdmin(user string, admin bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		var v []byte
		if b != nil {
			v = b.Get([]byte(user))
		}
		if v == nil {
			return ErrNotFound
		}
		var a Account
		if err := json.Unmarshal(v, &a); err != nil {
			return fmt.Errorf("store: account %s: %w", user, err)
		}
		a.Admin = admin
		nv, _ := json.Marshal(&a)
		return b.Put([]byte(user), nv)
	})
}

// Account returns the stored record of user.
func (s *Store) Account(user string) (*Account, error) {
	var a *Account
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b == nil {
			return ErrNotFound
		}
		v := b.Get([]byte(user))
		if v == nil {
			return ErrNotFound
		}
		a = new(Account)
		return json.Unmarshal(v, a)
	})
	return a, err
}

// DeleteAccount removes the account record. Modules remove their own data
// through the server's account-deleted hook.
func (s *Store) DeleteAccount(user string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b == nil || b.Get([]byte(user)) == nil {
			return ErrNotFound
		}
		if err := forgetUsage(tx, user); err != nil {
			return err
		}
		return b.Delete([]byte(user))
	})
}

// Users lists account names.
func (s *Store) Users() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// CreateAccounts creates prefix1…prefixN with one password in a single
// transaction (benchmarks); existing accounts are left alone.
func (s *Store) CreateAccounts(prefix string, n int, password string) error {
	a, err := newAccount(password, false)
	if err != nil {
		return err
	}
	v, _ := json.Marshal(a)
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAccounts)
		if err != nil {
			return err
		}
		for i := 1; i <= n; i++ {
			k := []byte(fmt.Sprintf("%s%d", prefix, i))
			if b.Get(k) == nil {
				if err := b.Put(k, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
