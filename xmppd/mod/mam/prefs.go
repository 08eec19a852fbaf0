package mam

import (
	"encoding/json"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Archiving preferences (XEP-0313 §6): a default (always, never, roster)
// and JIDs always or never archived. Kept as a small JSON value per
// account, read inside the transaction that archives a message, and
// charged to the account's budget like everything else it keeps.
type prefs struct {
	Default string   `json:"default"`
	Always  []string `json:"always,omitempty"`
	Never   []string `json:"never,omitempty"`
}

// KindPrefs is the preferences' charge on the account's storage budget.
const KindPrefs = "mam_prefs"

// maxPrefJIDs bounds the always/never lists together: each archived
// message reads them.
const maxPrefJIDs = 1000

var prefsLimit = store.Limit{Bytes: 256 << 10, Items: 1}

func readPrefs(tx *bolt.Tx, user string) prefs {
	p := prefs{Default: "always"}
	if b := tx.Bucket(bucketPrefs); b != nil {
		if v := b.Get([]byte(user)); v != nil {
			_ = json.Unmarshal(v, &p) // a damaged value means the default
		}
	}
	return p
}

// archives applies the preferences to a message between the account and
// peer: a JID on a list (bare, or the exact full JID) decides, never
// before always; otherwise the default, where "roster" means peer is in
// the account's contact list (any subscription, or one asked for).
func (p prefs) archives(srv *server.Server, user string, peer jid.JID) bool {
	// The JID's strings only when a list or the roster needs them: made
	// for every message and party, they were 3% of the server's CPU at
	// saturation (hearth-bench, pprof) with the default preferences.
	if len(p.Never) > 0 || len(p.Always) > 0 {
		bare, full := peer.Bare().String(), peer.String()
		if slices.Contains(p.Never, bare) || slices.Contains(p.Never, full) {
			return false
		}
		if slices.Contains(p.Always, bare) || slices.Contains(p.Always, full) {
			return true
		}
	}
	switch p.Default {
	case "never":
		return false
	case "roster":
		c := srv.Contacts()
		if c == nil {
			return false
		}
		r, err := c.Relation(user, peer.Bare().String())
		return err == nil && (r.To || r.From || r.Ask)
	}
	return true
}

func (p prefs) element() *stream.Element {
	el := stream.New(NS, "prefs", "default", p.Default)
	always, never := stream.New(NS, "always"), stream.New(NS, "never")
	for _, j := range p.Always {
		always.Add(stream.New(NS, "jid").AddText(j))
	}
	for _, j := range p.Never {
		never.Add(stream.New(NS, "jid").AddText(j))
	}
	return el.Add(always, never)
}

// parsePrefs reads a <prefs/> set; anything malformed is bad-request.
func parsePrefs(el *stream.Element) (prefs, error) {
	p := prefs{Default: el.Get("default")}
	switch p.Default {
	case "always", "never", "roster":
	default:
		return p, withText(server.ErrBadRequest, "default must be always, never or roster")
	}
	n := 0
	for _, list := range el.Children() {
		if list.Space != NS || (list.Local != "always" && list.Local != "never") {
			continue
		}
		for _, j := range list.Children() {
			if j.Space != NS || j.Local != "jid" {
				continue
			}
			parsed, err := jid.Parse(j.Text())
			if err != nil {
				return p, withText(server.ErrBadRequest, "not a JID: "+j.Text())
			}
			if n++; n > maxPrefJIDs {
				return p, withText(server.ErrNotAcceptable, "too many JIDs in the preferences")
			}
			if list.Local == "always" {
				p.Always = append(p.Always, parsed.String())
			} else {
				p.Never = append(p.Never, parsed.String())
			}
		}
	}
	slices.Sort(p.Always)
	slices.Sort(p.Never)
	p.Always, p.Never = slices.Compact(p.Always), slices.Compact(p.Never)
	return p, nil
}

// prefsCache keeps the preferences of accounts that send or receive
// messages: every archived message consults both parties', and a read
// transaction per message waited behind every file growth of the
// database (bbolt's remap takes the lock read transactions hold).
type prefsCache struct {
	mu sync.Mutex
	m  map[string]prefs
}

// maxCachedPrefs bounds the cache; past it, it starts again empty.
const maxCachedPrefs = 10000

func (c *prefsCache) get(srv *server.Server, user string) prefs {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[user]; ok {
		return p
	}
	p := prefs{Default: "always"}
	_ = srv.Store.View(func(tx *bolt.Tx) error {
		p = readPrefs(tx, user)
		return nil
	})
	if c.m == nil || len(c.m) >= maxCachedPrefs {
		c.m = map[string]prefs{}
	}
	c.m[user] = p
	return p
}

func (c *prefsCache) forget(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, user)
}

func (m *mod) savePrefs(user string, p prefs) error {
	// Forgotten before and after: a message archived meanwhile reads
	// them again, and nothing keeps the old ones once the new are stored.
	m.prefs.forget(user)
	defer m.prefs.forget(user)
	v, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return m.srv.Store.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketPrefs)
		if err != nil {
			return err
		}
		old := int64(len(b.Get([]byte(user))))
		items := int64(1)
		if old > 0 {
			items = 0
		}
		if err := store.Charge(tx, user, KindPrefs, int64(len(v))-old, items, prefsLimit); err != nil {
			return server.ErrResourceConstraint
		}
		return b.Put([]byte(user), v)
	})
}

func withText(e *server.StanzaError, text string) *server.StanzaError {
	c := *e
	c.Text = text
	return &c
}
