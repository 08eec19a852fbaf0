// Package roster implements RFC 6121 §2: the jabber:iq:roster protocol
// (get with §2.6 versioning, set, remove, pushes) and the stored
// subscription state of every contact, which the presence module changes
// through Update and Apply (state.go) and other modules read through Get,
// Subscribers and Subscriptions.
package roster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// NS is the roster namespace.
const NS = "jabber:iq:roster"

// MaxItems caps one roster: a client bug that adds contacts in a loop
// must not fill the SD card, and no family member has more friends.
const MaxItems = 1000

var (
	bucketItems = []byte("roster_items") // user\0contact → JSON record
	bucketVer   = []byte("roster_ver")   // user → uint64 roster version
)

// Sub is the subscription attribute of an item.
type Sub string

// Subscription states (RFC 6121 §2.1.2.5).
const (
	None Sub = ""
	To   Sub = "to"
	From Sub = "from"
	Both Sub = "both"
)

func (s Sub) String() string {
	if s == None {
		return "none"
	}
	return string(s)
}

// HasTo reports whether the user receives the contact's presence.
func (s Sub) HasTo() bool { return s == To || s == Both }

// HasFrom reports whether the contact receives the user's presence.
func (s Sub) HasFrom() bool { return s == From || s == Both }

func makeSub(to, from bool) Sub {
	switch {
	case to && from:
		return Both
	case to:
		return To
	case from:
		return From
	}
	return None
}

// Item is what the server knows about one contact of one user. A record
// that only holds an inbound subscription request is not Listed: RFC 6121
// §3.1.3 keeps such a request out of the roster until the user answers.
type Item struct {
	JID    string   `json:"-"` // the contact's bare JID (the key)
	Name   string   `json:"name,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Sub    Sub      `json:"sub,omitempty"`
	// Ask: the user asked to subscribe and the contact has not answered
	// ("pending out").
	Ask bool `json:"ask,omitempty"`
	// PendingIn: the contact asked to subscribe to the user; Request is
	// that presence stanza, delivered again at the user's next login.
	PendingIn bool   `json:"in,omitempty"`
	Request   []byte `json:"req,omitempty"`
	// Approved: the user pre-approved a request from the contact (§3.4).
	Approved bool `json:"approved,omitempty"`
	// Listed: the item is in the user's roster.
	Listed bool `json:"listed,omitempty"`
}

// empty reports whether the record says nothing worth keeping.
func (it *Item) empty() bool {
	return !it.Listed && it.Sub == None && !it.Ask && !it.PendingIn && !it.Approved
}

// visible reports whether two records differ in what a roster push shows.
func visibleEqual(a, b *Item) bool {
	if !a.Listed && !b.Listed {
		return true
	}
	return a.Listed == b.Listed && a.Name == b.Name && slices.Equal(a.Groups, b.Groups) &&
		a.Sub == b.Sub && a.Ask == b.Ask && a.Approved == b.Approved
}

// Element renders the item as in a roster result or push.
func (it *Item) Element() *stream.Element {
	el := stream.New(NS, "item", "jid", it.JID)
	if it.Name != "" {
		el.Set("name", it.Name)
	}
	el.Set("subscription", it.Sub.String())
	if it.Ask {
		el.Set("ask", "subscribe")
	}
	if it.Approved {
		el.Set("approved", "true")
	}
	for _, g := range it.Groups {
		el.Add(stream.New(NS, "group").AddText(g))
	}
	return el
}

// ErrFull is returned when a roster has MaxItems items.
var ErrFull = &server.StanzaError{Type: "cancel", Condition: "resource-constraint",
	Text: fmt.Sprintf("a roster holds at most %d contacts", MaxItems)}

func prefix(user string) []byte { return append(store.Key(user), 0) }

func decode(k, v []byte, user string) (Item, error) {
	var it Item
	if err := json.Unmarshal(v, &it); err != nil {
		return it, fmt.Errorf("roster: record %q: %w", k, err)
	}
	it.JID = string(k[len(user)+1:])
	return it, nil
}

func getTx(tx *bolt.Tx, user, contact string) (Item, bool, error) {
	b := tx.Bucket(bucketItems)
	if b == nil {
		return Item{JID: contact}, false, nil
	}
	k := store.Key(user, contact)
	v := b.Get(k)
	if v == nil {
		return Item{JID: contact}, false, nil
	}
	it, err := decode(k, v, user)
	return it, err == nil, err
}

// Get returns user's record of contact (a bare JID string).
func Get(st *store.Store, user, contact string) (it Item, ok bool, err error) {
	err = st.View(func(tx *bolt.Tx) error {
		it, ok, err = getTx(tx, user, contact)
		return err
	})
	return it, ok, err
}

// Each calls fn for every record of user (also those not Listed), in
// JID order, until fn returns false.
func Each(st *store.Store, user string, fn func(Item) bool) error {
	return st.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		if b == nil {
			return nil
		}
		p := prefix(user)
		c := b.Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			it, err := decode(k, v, user)
			if err != nil {
				return err
			}
			if !fn(it) {
				return nil
			}
		}
		return nil
	})
}

func collect(st *store.Store, user string, keep func(*Item) bool) ([]Item, error) {
	var out []Item
	err := Each(st, user, func(it Item) bool {
		if keep(&it) {
			out = append(out, it)
		}
		return true
	})
	return out, err
}

// Subscribers are the contacts that receive user's presence (from/both).
func Subscribers(st *store.Store, user string) ([]Item, error) {
	return collect(st, user, func(it *Item) bool { return it.Sub.HasFrom() })
}

// Subscriptions are the contacts whose presence user receives (to/both).
func Subscriptions(st *store.Store, user string) ([]Item, error) {
	return collect(st, user, func(it *Item) bool { return it.Sub.HasTo() })
}

// PendingIn are the unanswered subscription requests to user.
func PendingIn(st *store.Store, user string) ([]Item, error) {
	return collect(st, user, func(it *Item) bool { return it.PendingIn })
}

// Items returns user's roster (Listed items) and its version.
func Items(st *store.Store, user string) (items []Item, ver uint64, err error) {
	err = st.View(func(tx *bolt.Tx) error {
		ver = verTx(tx, user)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	items, err = collect(st, user, func(it *Item) bool { return it.Listed })
	return items, ver, err
}

func verTx(tx *bolt.Tx, user string) uint64 {
	b := tx.Bucket(bucketVer)
	if b == nil {
		return 0
	}
	v := b.Get([]byte(user))
	if len(v) != 8 {
		return 0
	}
	var n uint64
	for _, c := range v {
		n = n<<8 | uint64(c)
	}
	return n
}

// maxRecords bounds all records of a user, unanswered requests included,
// so that strangers cannot grow the database by asking to subscribe.
const maxRecords = 2 * MaxItems

// count returns how many records user has and how many are Listed.
func count(tx *bolt.Tx, user string) (all, listed int) {
	b := tx.Bucket(bucketItems)
	if b == nil {
		return 0, 0
	}
	p := prefix(user)
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		all++
		// A substring test instead of decoding: JSON escapes the quotes
		// of any string value, so only the field itself can match.
		if bytes.Contains(v, []byte(`"listed":true`)) {
			listed++
		}
	}
	return all, listed
}

// locks serialise one user's roster changes, so pushes leave in version
// order.
var locks sync.Map // lockKey → *sync.Mutex

type lockKey struct {
	st   *store.Store
	user string
}

func lock(st *store.Store, user string) func() {
	m, _ := locks.LoadOrStore(lockKey{st, user}, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// Change is the result of Update.
type Change struct {
	Before, After Item
	Existed       bool
	Ver           uint64 // the roster version after the change
	Pushed        bool   // the roster changed visibly (and was pushed)
}

// Update changes user's record of contact with fn in a group-committed
// transaction and pushes the item to the user's interested resources if the
// roster changed visibly. fn gets the current record (JID set, zero values
// if there is none) and may run more than once: it must only look at it.
// Setting *it to Item{} (or to an empty record) deletes it.
func Update(srv *server.Server, user, contact string, fn func(it *Item) error) (Change, error) {
	unlock := lock(srv.Store, user)
	defer unlock()
	var ch Change
	err := srv.Store.Batch(func(tx *bolt.Tx) error {
		ch = Change{}
		before, existed, err := getTx(tx, user, contact)
		if err != nil {
			return err
		}
		after := before
		after.Groups = slices.Clone(before.Groups)
		after.Request = slices.Clone(before.Request)
		if err := fn(&after); err != nil {
			return err
		}
		after.JID = contact
		if !after.PendingIn {
			after.Request = nil
		}
		ch.Before, ch.After, ch.Existed = before, after, existed
		b, err := tx.CreateBucketIfNotExists(bucketItems)
		if err != nil {
			return err
		}
		k := store.Key(user, contact)
		if after.empty() {
			if existed {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		} else {
			if !existed || after.Listed && !before.Listed {
				all, listed := count(tx, user)
				if !existed && all >= maxRecords || after.Listed && !before.Listed && listed >= MaxItems {
					return ErrFull
				}
			}
			v, err := json.Marshal(&after)
			if err != nil {
				return err
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		ver := verTx(tx, user)
		if !visibleEqual(&before, &after) {
			ver++
			vb, err := tx.CreateBucketIfNotExists(bucketVer)
			if err != nil {
				return err
			}
			if err := vb.Put([]byte(user), store.U64(ver)); err != nil {
				return err
			}
			ch.Pushed = true
		}
		ch.Ver = ver
		return nil
	})
	if err != nil {
		var se *server.StanzaError
		if errors.As(err, &se) {
			return ch, se
		}
		return ch, fmt.Errorf("roster: update %s of %s: %w", contact, user, err)
	}
	if ch.Pushed {
		it := ch.After
		if !it.Listed {
			it = Item{JID: contact, Sub: "remove"}
		}
		Push(srv, user, it, ch.Ver)
	}
	return ch, nil
}

var pushSeq atomic.Uint64

// Push sends a roster push of it (Sub "remove" for a removal) to user's
// interested resources (RFC 6121 §2.1.6).
func Push(srv *server.Server, user string, it Item, ver uint64) {
	q := stream.New(NS, "query", "ver", strconv.FormatUint(ver, 10)).Add(it.Element())
	iq := stream.New(stream.NSClient, "iq", "type", "set", "id", "push"+strconv.FormatUint(pushSeq.Add(1), 10))
	iq.Add(q)
	srv.SendTo(user, iq, func(s *session.Session) bool { return s.Interested() })
}

// deleteUser removes a deleted account's records. Its version counter is
// kept on purpose: a client that cached the old account's roster must not
// find its version current if the name is registered again.
func deleteUser(srv *server.Server, user string) error {
	return srv.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		if b == nil {
			return nil
		}
		p := prefix(user)
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
		vb, err := tx.CreateBucketIfNotExists(bucketVer)
		if err != nil {
			return err
		}
		// Keep counting from where the old account stopped.
		return vb.Put([]byte(user), store.U64(verTx(tx, user)+1))
	})
}
