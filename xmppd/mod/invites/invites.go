// Package invites lets people join by invitation only: an admin (or the
// setup pages) creates an invite, the new member's app redeems its token
// during in-band registration (XEP-0401 invite URIs, XEP-0445 pre-auth
// registration, XEP-0077 registration). Without a valid token nobody can
// register, so the box is never an open relay for spam accounts.
package invites

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

var bucket = []byte("invites")

// Invite is one stored invitation.
type Invite struct {
	Token   string    `json:"token"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Uses is how many accounts may still register with it.
	Uses int `json:"uses"`
	// Inviter is the account that invited (for the roster
	// pre-subscription); "" for invites made by the box's admin tools.
	Inviter string `json:"inviter,omitempty"`
	// User reserves the account name, if set.
	User  string `json:"user,omitempty"`
	Admin bool   `json:"admin,omitempty"`
}

// ErrInvalid is a token that does not exist, expired or was used up.
var ErrInvalid = errors.New("invite is not valid")

// Options for a new invite.
type Options struct {
	TTL     time.Duration
	Uses    int
	Inviter string
	User    string
	Admin   bool
}

// Create stores a new invite.
func Create(st *store.Store, o Options) (*Invite, error) {
	if o.TTL <= 0 {
		o.TTL = 7 * 24 * time.Hour
	}
	if o.Uses <= 0 {
		o.Uses = 1
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	inv := &Invite{
		Token: base64.RawURLEncoding.EncodeToString(b), Created: now, Expires: now.Add(o.TTL),
		Uses: o.Uses, Inviter: o.Inviter, User: o.User, Admin: o.Admin,
	}
	v, _ := json.Marshal(inv)
	err := st.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return bk.Put([]byte(inv.Token), v)
	})
	if err != nil {
		return nil, fmt.Errorf("invites: %w", err)
	}
	return inv, nil
}

// Get returns a valid invite.
func Get(st *store.Store, token string) (*Invite, error) {
	var inv *Invite
	err := st.View(func(tx *bolt.Tx) error {
		var err error
		inv, err = get(tx, token)
		return err
	})
	return inv, err
}

func get(tx *bolt.Tx, token string) (*Invite, error) {
	bk := tx.Bucket(bucket)
	if bk == nil || token == "" {
		return nil, ErrInvalid
	}
	v := bk.Get([]byte(token))
	if v == nil {
		return nil, ErrInvalid
	}
	inv := new(Invite)
	if err := json.Unmarshal(v, inv); err != nil {
		return nil, err
	}
	if inv.Uses <= 0 || time.Now().After(inv.Expires) {
		return nil, ErrInvalid
	}
	return inv, nil
}

// Redeem uses the token once and creates the account in the same
// transaction, so a token cannot be spent twice by racing registrations and
// a failed registration does not spend it.
func Redeem(st *store.Store, token, user, password string) (*Invite, error) {
	var inv *Invite
	err := st.Update(func(tx *bolt.Tx) error {
		var err error
		if inv, err = get(tx, token); err != nil {
			return err
		}
		if inv.User != "" && inv.User != user {
			return fmt.Errorf("invites: this invite is for the name %q", inv.User)
		}
		if err := store.CreateAccountTx(tx, user, password, inv.Admin); err != nil {
			return err
		}
		inv.Uses--
		bk := tx.Bucket(bucket)
		if inv.Uses <= 0 {
			return bk.Delete([]byte(token))
		}
		v, _ := json.Marshal(inv)
		return bk.Put([]byte(token), v)
	})
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// List returns the invites that can still be used.
func List(st *store.Store) ([]*Invite, error) {
	var out []*Invite
	err := st.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, _ []byte) error {
			if inv, err := get(tx, string(k)); err == nil {
				out = append(out, inv)
			}
			return nil
		})
	})
	return out, err
}

// Revoke deletes an invite.
func Revoke(st *store.Store, token string) error {
	return st.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		if bk == nil || bk.Get([]byte(token)) == nil {
			return ErrInvalid
		}
		return bk.Delete([]byte(token))
	})
}

// URI is the XEP-0401 link an XMPP app opens to register with the invite.
func (inv *Invite) URI(domain string) string {
	return "xmpp:" + domain + "?register;preauth=" + inv.Token
}
