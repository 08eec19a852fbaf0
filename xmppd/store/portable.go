package store

// Account records for xmppd/portable (XEP-0227 import), which creates an
// account from SCRAM verifiers another server exported: there is no
// password to derive them from.

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// AccountTx returns user's record in tx, nil if there is none.
func AccountTx(tx *bolt.Tx, user string) (*Account, error) {
	b := tx.Bucket(bucketAccounts)
	if b == nil {
		return nil, nil
	}
	v := b.Get([]byte(user))
	if v == nil {
		return nil, nil
	}
	a := new(Account)
	if err := json.Unmarshal(v, a); err != nil {
		return nil, fmt.Errorf("store: account %s: %w", user, err)
	}
	return a, nil
}

// CreateAccountRecordTx stores a as a new account, ErrExists if the name
// is taken.
func CreateAccountRecordTx(tx *bolt.Tx, user string, a *Account) error {
	if user == "" || len(a.Salt) == 0 || a.Iter <= 0 {
		return fmt.Errorf("store: account %q: no name, salt or iteration count", user)
	}
	b, err := tx.CreateBucketIfNotExists(bucketAccounts)
	if err != nil {
		return err
	}
	if b.Get([]byte(user)) != nil {
		return fmt.Errorf("store: %s: %w", user, ErrExists)
	}
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return b.Put([]byte(user), v)
}

// NewAccountRecord derives a record from a password (an import that
// carries one: the password itself is not kept).
func NewAccountRecord(password string) (*Account, error) { return newAccount(password, false) }
