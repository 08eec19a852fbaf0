// Package roster implements RFC 6121 §2: the jabber:iq:roster protocol
// (get with §2.6 versioning, set, remove, pushes) and the stored
// subscription state of every contact. It owns the rules of who shares
// presence with whom and offers them to the other modules as the server's
// Contacts (contacts.go); the presence module changes subscriptions
// through it, and nothing imports this package.
//
// Storage is two buckets. roster_items holds each record as JSON (name,
// groups, a pending request): read only by a roster get, a set and the
// delivery of pending requests at login. roster_index holds what
// broadcasts, probes and the caps need — one flags byte and the record's
// charged size per contact — so that a presence costs the same for a
// roster of long names and 64 groups per item as for a plain one. A probe
// found one bare <presence/> costing 0.5 s of CPU when every broadcast
// JSON-decoded every record of a 66 MB roster.
package roster

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
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

// MaxBytes bounds one account's roster records, charged to its storage
// budget (store.Charge, kind "roster"). Each record is charged the larger
// of its stored size and its size in a roster result, so MaxBytes also
// bounds the result of a roster get: at half the session's write queue
// (session.MaxQueue) it always fits, with room for what is queued already.
// 1,000 contacts with a name and a few groups each take about 150 KiB.
const MaxBytes = 512 << 10

// quotaKind is the roster's kind in the per-account storage budget.
const quotaKind = "roster"

// budget is a roster's limit in the per-account storage budget.
var budget = store.Limit{Bytes: MaxBytes, Items: maxRecords}

var (
	bucketItems = []byte("roster_items") // user\0contact → JSON record
	bucketIndex = []byte("roster_index") // user\0contact → flags byte, uvarint charged bytes
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

// ErrTooBig is returned when a change would take the roster past MaxBytes.
var ErrTooBig = &server.StanzaError{Type: "cancel", Condition: "resource-constraint",
	Text: fmt.Sprintf("a roster keeps at most %d KiB of names and groups", MaxBytes>>10)}

// entry is a record's line in the index.
type entry struct {
	flags byte
	cost  int64 // bytes charged to the account's budget for the record
}

const (
	fTo byte = 1 << iota
	fFrom
	fAsk
	fPendingIn
	fApproved
	fListed
)

func entryOf(it *Item) byte {
	var f byte
	for _, b := range []struct {
		on bool
		f  byte
	}{{it.Sub.HasTo(), fTo}, {it.Sub.HasFrom(), fFrom}, {it.Ask, fAsk}, {it.PendingIn, fPendingIn},
		{it.Approved, fApproved}, {it.Listed, fListed}} {
		if b.on {
			f |= b.f
		}
	}
	return f
}

func (e entry) has(f byte) bool { return e.flags&f != 0 }

func (e entry) relation() server.Relation {
	return server.Relation{To: e.has(fTo), From: e.has(fFrom), Ask: e.has(fAsk), PendingIn: e.has(fPendingIn)}
}

func (e entry) encode() []byte { return binary.AppendUvarint([]byte{e.flags}, uint64(e.cost)) }

func decodeEntry(v []byte) entry {
	if len(v) == 0 {
		return entry{}
	}
	c, _ := binary.Uvarint(v[1:])
	return entry{flags: v[0], cost: int64(c)}
}

// cost is what a record is charged: the larger of its size on disk and
// its size in a roster result (XML escaping and <group/> tags can make
// that several times the JSON), so that the budget bounds both.
func cost(k, v []byte, it *Item) int64 {
	n := int64(len(k) + len(v))
	if it.Listed {
		n = max(n, int64(len(it.Element().Append(nil, NS))))
	}
	return n
}

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

// entryTx returns user's index entry for contact.
func entryTx(tx *bolt.Tx, user, contact string) (entry, bool) {
	b := tx.Bucket(bucketIndex)
	if b == nil {
		return entry{}, false
	}
	v := b.Get(store.Key(user, contact))
	return decodeEntry(v), v != nil
}

// eachEntry calls fn for user's index entries in JID order until fn
// returns false.
func eachEntry(tx *bolt.Tx, user string, fn func(contact string, e entry) bool) {
	b := tx.Bucket(bucketIndex)
	if b == nil {
		return
	}
	p := prefix(user)
	c := b.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if !fn(string(k[len(p):]), decodeEntry(v)) {
			return
		}
	}
}

// contacts calls fn with every contact of user whose entry has flag f,
// reading only the index.
func contacts(st *store.Store, user string, f byte, fn func(string)) error {
	var l []string
	err := st.View(func(tx *bolt.Tx) error {
		eachEntry(tx, user, func(c string, e entry) bool {
			if e.has(f) {
				l = append(l, c)
			}
			return true
		})
		return nil
	})
	// fn runs after the read transaction: it routes stanzas, and a long
	// read transaction holds bbolt's pages.
	for _, c := range l {
		fn(c)
	}
	return err
}

// collect decodes the records of user whose index entry has flag f.
func collect(st *store.Store, user string, f byte) ([]Item, error) {
	var out []Item
	err := st.View(func(tx *bolt.Tx) error {
		var err error
		eachEntry(tx, user, func(c string, e entry) bool {
			if !e.has(f) {
				return true
			}
			var it Item
			var ok bool
			if it, ok, err = getTx(tx, user, c); err != nil {
				return false
			}
			if ok {
				out = append(out, it)
			}
			return true
		})
		return err
	})
	return out, err
}

// Subscribers are the contacts that receive user's presence (from/both).
func Subscribers(st *store.Store, user string) ([]Item, error) { return collect(st, user, fFrom) }

// Subscriptions are the contacts whose presence user receives (to/both).
func Subscriptions(st *store.Store, user string) ([]Item, error) { return collect(st, user, fTo) }

// PendingIn are the unanswered subscription requests to user.
func PendingIn(st *store.Store, user string) ([]Item, error) { return collect(st, user, fPendingIn) }

// Items returns user's roster (Listed items) and its version.
func Items(st *store.Store, user string) (items []Item, ver uint64, err error) {
	err = st.View(func(tx *bolt.Tx) error {
		ver = verTx(tx, user)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	items, err = collect(st, user, fListed)
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
	return binary.BigEndian.Uint64(v)
}

// maxRecords bounds all records of a user, unanswered requests included,
// so that strangers cannot grow the database by asking to subscribe.
const maxRecords = 2 * MaxItems

// maxRequest bounds a kept subscription request: a longer one (a status
// text, a nickname, anything a stranger pads it with) is replaced by a
// plain subscribe when it is delivered again at login.
const maxRequest = 1 << 10

// count returns how many records user has and how many are Listed, from
// the index.
func count(tx *bolt.Tx, user string) (all, listed int) {
	eachEntry(tx, user, func(_ string, e entry) bool {
		all++
		if e.has(fListed) {
			listed++
		}
		return true
	})
	return all, listed
}

// state is what the roster keeps on each server.
type state struct {
	// locks serialise one user's roster changes, so pushes leave in
	// version order. An entry lives only while it is held (a sync.Map
	// here kept one mutex for every account ever changed).
	locks   server.Locks
	pushSeq atomic.Uint64
}

type stateKey struct{}

func stateOf(srv *server.Server) *state {
	return server.State(srv, stateKey{}, func() *state { return new(state) })
}

func lock(srv *server.Server, user string) func() { return stateOf(srv).locks.Lock(user) }

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
	unlock := lock(srv, user)
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
		if !after.empty() && (!existed || after.Listed && !before.Listed) {
			all, listed := count(tx, user)
			if !existed && all >= maxRecords || after.Listed && !before.Listed && listed >= MaxItems {
				return ErrFull
			}
		}
		if err := put(tx, user, contact, &after, budget); err != nil {
			return err
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
		if errors.Is(err, store.ErrQuota) {
			return ch, ErrTooBig
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

// put writes (or, for an empty record, deletes) user's record of contact,
// its index entry and the charge to the account's budget, in tx.
func put(tx *bolt.Tx, user, contact string, it *Item, lim store.Limit) error {
	items, err := tx.CreateBucketIfNotExists(bucketItems)
	if err != nil {
		return err
	}
	index, err := tx.CreateBucketIfNotExists(bucketIndex)
	if err != nil {
		return err
	}
	k := store.Key(user, contact)
	old, existed := entryTx(tx, user, contact)
	var now entry
	if it.empty() {
		if existed {
			if err := items.Delete(k); err != nil {
				return err
			}
			if err := index.Delete(k); err != nil {
				return err
			}
		}
	} else {
		v, err := json.Marshal(it)
		if err != nil {
			return err
		}
		now = entry{flags: entryOf(it), cost: cost(k, v, it)}
		if err := items.Put(k, v); err != nil {
			return err
		}
		if err := index.Put(k, now.encode()); err != nil {
			return err
		}
	}
	var dItems int64
	switch {
	case existed && it.empty():
		dItems = -1
	case !existed && !it.empty():
		dItems = 1
	}
	if d := now.cost - old.cost; d != 0 || dItems != 0 {
		return store.Charge(tx, user, quotaKind, d, dItems, lim)
	}
	return nil
}

// Push sends a roster push of it (Sub "remove" for a removal) to user's
// interested resources (RFC 6121 §2.1.6).
func Push(srv *server.Server, user string, it Item, ver uint64) {
	q := stream.New(NS, "query", "ver", strconv.FormatUint(ver, 10)).Add(it.Element())
	iq := stream.New(stream.NSClient, "iq", "type", "set", "id", "push"+strconv.FormatUint(stateOf(srv).pushSeq.Add(1), 10))
	iq.Add(q)
	srv.SendTo(user, iq, func(s *session.Session) bool { return s.Interested() })
}

// deleteUser removes a deleted account's records. Its version counter is
// kept on purpose: a client that cached the old account's roster must not
// find its version current if the name is registered again.
func deleteUser(srv *server.Server, user string) error {
	unlock := lock(srv, user)
	defer unlock()
	return srv.Store.Update(func(tx *bolt.Tx) error {
		p := prefix(user)
		var freed int64
		var n int64
		for _, name := range [][]byte{bucketItems, bucketIndex} {
			b := tx.Bucket(name)
			if b == nil {
				continue
			}
			var keys [][]byte
			c := b.Cursor()
			for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
				keys = append(keys, slices.Clone(k))
				if string(name) == string(bucketIndex) {
					freed += decodeEntry(v).cost
					n++
				}
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		if err := store.Charge(tx, user, quotaKind, -freed, -n, store.Limit{}); err != nil {
			return err
		}
		vb, err := tx.CreateBucketIfNotExists(bucketVer)
		if err != nil {
			return err
		}
		// Keep counting from where the old account stopped.
		return vb.Put([]byte(user), store.U64(verTx(tx, user)+1))
	})
}

// migrate builds the index (and charges the records to their accounts'
// budgets) for a database written before the index existed. It runs once:
// afterwards the index bucket exists.
func migrate(st *store.Store) error {
	var done bool
	if err := st.View(func(tx *bolt.Tx) error {
		done = tx.Bucket(bucketIndex) != nil
		return nil
	}); err != nil || done {
		return err
	}
	return st.Update(func(tx *bolt.Tx) error {
		index, err := tx.CreateBucketIfNotExists(bucketIndex)
		if err != nil {
			return err
		}
		items := tx.Bucket(bucketItems)
		if items == nil {
			return nil
		}
		type usage struct{ bytes, n int64 }
		per := map[string]*usage{}
		err = items.ForEach(func(k, v []byte) error {
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return nil
			}
			user := string(k[:i])
			it, err := decode(k, v, user)
			if err != nil {
				return err
			}
			e := entry{flags: entryOf(&it), cost: cost(k, v, &it)}
			u := per[user]
			if u == nil {
				u = new(usage)
				per[user] = u
			}
			u.bytes += e.cost
			u.n++
			return index.Put(slices.Clone(k), e.encode())
		})
		if err != nil {
			return err
		}
		for user, u := range per {
			// Charged without a limit: a roster bigger than today's
			// budget stays readable and can only shrink.
			if err := store.Charge(tx, user, quotaKind, u.bytes, u.n, store.Limit{}); err != nil {
				return err
			}
		}
		return nil
	})
}
