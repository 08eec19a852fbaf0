// Package invites lets people join by invitation only: an admin (or a
// member, where the admin allows it) creates an invite, the new member's
// app redeems its token during in-band registration (XEP-0401 invite URIs,
// XEP-0445 pre-auth registration, XEP-0077 registration) or the web
// landing page redeems it through Redeem. Without a valid token nobody can
// register, so the box is never an open relay for spam accounts.
//
// The same store holds password-reset links: a token of kind "reset" made
// by an admin for one account, spent by ResetPassword.
//
// Everything is bounded: an invite lives 1 hour to 4 weeks, a group invite
// has at most MaxGroupUses uses, and one creator holds at most
// MaxLivePerCreator live invites (expired ones are swept on every Create),
// so no account can fill the box's storage with invites.
package invites

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

var (
	bucket      = []byte("invites")
	rolesBucket = []byte("invites-roles") // account → role, for roles the account record does not hold (limited)
)

// Roles an invite gives the new account.
const (
	RoleAdmin   = "admin"
	RoleMember  = "member"
	RoleLimited = "limited" // local-only, cannot invite
)

// Kinds of token.
const (
	KindInvite = ""      // registers a new account
	KindReset  = "reset" // sets a new password for User
)

// Bounds.
const (
	MinTTL            = time.Hour
	MaxTTL            = 28 * 24 * time.Hour
	DefaultTTL        = 7 * 24 * time.Hour
	MaxGroupUses      = 100
	MaxLivePerCreator = 100
)

// Invite is one stored invitation (or reset link).
type Invite struct {
	Token   string    `json:"token"`
	Kind    string    `json:"kind,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Uses is how many accounts may still register with it; MaxUses is
	// how many it was made for (1: one person; more: a group).
	Uses    int `json:"uses"`
	MaxUses int `json:"max_uses,omitempty"`
	// Inviter is the account that invited (for the roster
	// pre-subscription and the per-creator cap); "" for invites made by
	// the box's admin tools.
	Inviter string `json:"inviter,omitempty"`
	// User reserves the account name (an invite) or names the account
	// whose password is reset (a reset link).
	User string `json:"user,omitempty"`
	// Role of the new account; Admin is the field of older records.
	Role  string `json:"role,omitempty"`
	Admin bool   `json:"admin,omitempty"`
	Note  string `json:"note,omitempty"`
	// NoRoster: the new member and the inviter do not become contacts.
	NoRoster bool `json:"no_roster,omitempty"`
}

// Used is how many accounts were made with it.
func (inv *Invite) Used() int { return inv.MaxUses - inv.Uses }

// Group reports whether several people may use it.
func (inv *Invite) Group() bool { return inv.MaxUses > 1 }

// Errors.
var (
	// ErrInvalid is a token that does not exist, expired, was revoked or
	// was used up.
	ErrInvalid = errors.New("invite is not valid")
	// ErrBadOptions is an invite outside the bounds.
	ErrBadOptions = errors.New("invites: bad options")
	// ErrTooMany: the creator already has MaxLivePerCreator live invites.
	ErrTooMany = errors.New("invites: too many open invitations; revoke some or wait until they expire")
	// ErrNotAllowed: this account may not create invites.
	ErrNotAllowed = errors.New("invites: this account may not invite people")
	// ErrWrongName: the invite reserves another name.
	ErrWrongName = errors.New("invites: this invite is for another name")
)

// Options for a new invite.
type Options struct {
	// TTL outside MinTTL..MaxTTL is ErrBadOptions (not clamped: the
	// caller asked for something the pages never offer); 0 means
	// DefaultTTL.
	TTL     time.Duration
	Uses    int // 0 means 1
	Inviter string
	User    string
	Role    string // "" means member
	Admin   bool   // same as Role admin (older callers)
	Note    string
	Kind    string
	// NoRoster: no pre-approved subscription with the inviter.
	NoRoster bool
}

func (o *Options) check() error {
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.TTL < MinTTL || o.TTL > MaxTTL {
		return fmt.Errorf("%w: valid for %v, must be 1 hour to 4 weeks", ErrBadOptions, o.TTL)
	}
	if o.Uses == 0 {
		o.Uses = 1
	}
	if o.Uses < 0 || o.Uses > MaxGroupUses {
		return fmt.Errorf("%w: %d uses, must be 1 to %d", ErrBadOptions, o.Uses, MaxGroupUses)
	}
	if o.Admin {
		o.Role = RoleAdmin
	}
	switch o.Role {
	case "":
		o.Role = RoleMember
	case RoleMember, RoleLimited:
	case RoleAdmin:
		// A forwarded group link must not make fifty admins.
		if o.Uses > 1 {
			return fmt.Errorf("%w: an admin invite is for one person", ErrBadOptions)
		}
	default:
		return fmt.Errorf("%w: role %q", ErrBadOptions, o.Role)
	}
	if len(o.Note) > 200 {
		return fmt.Errorf("%w: note longer than 200 bytes", ErrBadOptions)
	}
	switch o.Kind {
	case KindInvite:
	case KindReset:
		if o.User == "" || o.Uses != 1 {
			return fmt.Errorf("%w: a reset link is for one account", ErrBadOptions)
		}
		o.Role = ""
	default:
		return fmt.Errorf("%w: kind %q", ErrBadOptions, o.Kind)
	}
	return nil
}

// Create stores a new invite (or reset link), sweeping expired ones.
func Create(st *store.Store, o Options) (*Invite, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	inv := &Invite{
		Token: base64.RawURLEncoding.EncodeToString(b), Kind: o.Kind, Created: now, Expires: now.Add(o.TTL),
		Uses: o.Uses, MaxUses: o.Uses, Inviter: o.Inviter, User: o.User, Role: o.Role, Note: o.Note, NoRoster: o.NoRoster,
	}
	v, _ := json.Marshal(inv)
	err := st.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		live := 0
		var dead [][]byte
		err = bk.ForEach(func(k, v []byte) error {
			old, err := decode(v)
			if err != nil || !old.live(now) {
				dead = append(dead, append([]byte(nil), k...))
				return nil
			}
			if old.Inviter == o.Inviter {
				live++
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		if live >= MaxLivePerCreator {
			return ErrTooMany
		}
		return bk.Put([]byte(inv.Token), v)
	})
	if err != nil {
		return nil, fmt.Errorf("invites: create: %w", err)
	}
	return inv, nil
}

func decode(v []byte) (*Invite, error) {
	inv := new(Invite)
	if err := json.Unmarshal(v, inv); err != nil {
		return nil, err
	}
	if inv.MaxUses == 0 { // records from before MaxUses
		inv.MaxUses = inv.Uses
	}
	if inv.Admin {
		inv.Role = RoleAdmin
	}
	if inv.Role == "" && inv.Kind == KindInvite {
		inv.Role = RoleMember
	}
	return inv, nil
}

func (inv *Invite) live(now time.Time) bool { return inv.Uses > 0 && now.Before(inv.Expires) }

// Get returns a valid invite (not a reset link).
func Get(st *store.Store, token string) (*Invite, error) {
	return lookup(st, token, KindInvite)
}

// GetReset returns a valid reset link.
func GetReset(st *store.Store, token string) (*Invite, error) {
	return lookup(st, token, KindReset)
}

func lookup(st *store.Store, token, kind string) (*Invite, error) {
	var inv *Invite
	err := st.View(func(tx *bolt.Tx) error {
		var err error
		inv, err = get(tx, token, kind)
		return err
	})
	return inv, err
}

func get(tx *bolt.Tx, token, kind string) (*Invite, error) {
	bk := tx.Bucket(bucket)
	if bk == nil || token == "" {
		return nil, ErrInvalid
	}
	v := bk.Get([]byte(token))
	if v == nil {
		return nil, ErrInvalid
	}
	inv, err := decode(v)
	if err != nil {
		return nil, err
	}
	if !inv.live(time.Now()) || inv.Kind != kind {
		return nil, ErrInvalid
	}
	return inv, nil
}

// Redeem uses the token once and creates the account (and its role) in the
// same transaction, so a token cannot be spent twice by racing
// registrations and a failed registration does not spend it.
func Redeem(st *store.Store, token, user, password string) (*Invite, error) {
	return RedeemWith(st, token, user, password, nil)
}

// RedeemWith is Redeem that also runs then (when not nil) in the same
// transaction after the account is made: a member registering on the
// invite page brings their data from another server (xmppd/portable), and
// a failed import leaves neither the account nor a spent invite.
func RedeemWith(st *store.Store, token, user, password string, then func(tx *bolt.Tx) error) (*Invite, error) {
	var inv *Invite
	err := st.Update(func(tx *bolt.Tx) error {
		var err error
		if inv, err = get(tx, token, KindInvite); err != nil {
			return err
		}
		if inv.User != "" && inv.User != user {
			return fmt.Errorf("%w %q", ErrWrongName, inv.User)
		}
		if err := store.CreateAccountTx(tx, user, password, inv.Role == RoleAdmin); err != nil {
			return err
		}
		if inv.Role == RoleLimited {
			rb, err := tx.CreateBucketIfNotExists(rolesBucket)
			if err != nil {
				return err
			}
			if err := rb.Put([]byte(user), []byte(RoleLimited)); err != nil {
				return err
			}
		}
		if then != nil {
			if err := then(tx); err != nil {
				return err
			}
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

// ResetPassword spends a reset link and sets its account's new password.
// The link is deleted before the password is set: a racing second use
// finds no link, and a failure to set the password costs the member a new
// link from the admin, never a second use of the old one.
func ResetPassword(st *store.Store, token, password string) (string, error) {
	var inv *Invite
	err := st.Update(func(tx *bolt.Tx) error {
		var err error
		if inv, err = get(tx, token, KindReset); err != nil {
			return err
		}
		return tx.Bucket(bucket).Delete([]byte(token))
	})
	if err != nil {
		return "", err
	}
	if err := st.SetPassword(inv.User, password); err != nil {
		return "", fmt.Errorf("invites: reset %s: %w", inv.User, err)
	}
	return inv.User, nil
}

// List returns the invites and reset links that can still be used, oldest
// first.
func List(st *store.Store) ([]*Invite, error) {
	var out []*Invite
	now := time.Now()
	err := st.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(_, v []byte) error {
			if inv, err := decode(v); err == nil && inv.live(now) {
				out = append(out, inv)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// Revoke deletes an invite or reset link.
func Revoke(st *store.Store, token string) error {
	return st.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		if bk == nil || token == "" || bk.Get([]byte(token)) == nil {
			return ErrInvalid
		}
		return bk.Delete([]byte(token))
	})
}

// Role is the account's role: admin, member or limited ("" when the
// account does not exist).
func Role(st *store.Store, user string) string {
	acc, err := st.Account(user)
	if err != nil {
		return ""
	}
	if acc.Admin {
		return RoleAdmin
	}
	role := RoleMember
	st.View(func(tx *bolt.Tx) error {
		if rb := tx.Bucket(rolesBucket); rb != nil && string(rb.Get([]byte(user))) == RoleLimited {
			role = RoleLimited
		}
		return nil
	})
	return role
}

// SetRole records a member's role (admin pages: "limited"); the admin flag
// itself is the account record's.
func SetRole(st *store.Store, user, role string) error {
	return st.Update(func(tx *bolt.Tx) error {
		rb, err := tx.CreateBucketIfNotExists(rolesBucket)
		if err != nil {
			return err
		}
		if role == RoleLimited {
			return rb.Put([]byte(user), []byte(role))
		}
		return rb.Delete([]byte(user))
	})
}

// MayInvite reports whether user may create invites: admins always,
// members when membersMay (the admin's setting), limited accounts never.
func MayInvite(st *store.Store, user string, membersMay bool) bool {
	switch Role(st, user) {
	case RoleAdmin:
		return true
	case RoleMember:
		return membersMay
	}
	return false
}

// URI is the XEP-0401 link an XMPP app opens to register with the invite.
func (inv *Invite) URI(domain string) string {
	return "xmpp:" + domain + "?register;preauth=" + inv.Token
}
