// Package push is XEP-0357 push notifications: a phone's app registers
// its app server (a JID and a node, and a publish-options form that
// usually carries the app server's secret); when a message arrives for
// the account while that phone's stream is hibernating (XEP-0198) or gone
// altogether (offline storage), the server publishes a summary to the app
// server, which wakes the phone through its platform's push service.
//
// What is sent (XEP-0357 §5, §7): a pubsub publish from the account's
// bare JID to the registration's JID and node with an
// urn:xmpp:push:summary form: message-count (messages since the device
// last enabled push or came online) and last-message-sender. Never the
// body: a push travels through the app server and Google's or Apple's
// servers, and XEP-0357 gives the client no way to ask for it; Prosody's
// mod_cloud_notify also leaves it out by default. The publish-options
// form is passed on as the client gave it.
//
// When (what Prosody's mod_cloud_notify does, which the apps are written
// against): a message with a body or an encrypted payload (OMEMO,
// OpenPGP), or a carbon of one, for the account wakes every registered
// device that has no connected session right now — one that enabled push
// on a session that now hibernates, or whose stream is gone (it fetches
// the message from the archive or offline storage when woken). A
// device whose session is connected gets the message itself. A group-chat
// message counts only if its body names the account (a mention; the
// account's name stands in for the room nick, which this module cannot
// know). A member of a members-only room who is not in it is woken
// when a room message names them (server.Mentioned, fired by the MUC
// module), with the room occupant as sender.
//
// Rate: at most one publish per registration per MinInterval; messages in
// between are counted and summarised in one publish at the end of the
// interval, so the last message is never left without a notification.
//
// A JID that is no push service: XEP-0357 has the server accept the
// registration (the client knows its app server, the server cannot), so
// enable answers at once; the server then asks the JID's disco#info, and a
// JID that answers with an error or without a pubsub/push identity loses
// the registration, as does one whose answer to a publish is an error
// other than a temporary one — e.g. item-not-found when the app server
// forgot the node. Temporary: type wait, and an app server's domain that
// cannot be reached (remote-server-not-found/-timeout: a restarting app
// server must not cost every phone its registration); the probe at enable
// time, though, must be answered. Registrations to the server's own
// domain or to the account itself are refused outright (not-acceptable):
// those are certainly not app servers.
//
// Known double counts, accepted: a hibernating session that times out
// hands its unacknowledged messages to offline storage, which counts
// them again; a message for an offline account is counted before storage
// takes it, so one that storage then refuses (the account's quota) has
// still woken the phone.
//
// Storage: one bbolt bucket, key account\0jid\0node, value the enable
// element (publish-options included), at most MaxPerAccount per account;
// deleted with the account.
package push

import (
	"crypto/rand"
	"encoding/base64"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	ns          = "urn:xmpp:push:0"
	nsSummary   = "urn:xmpp:push:summary"
	nsPubsub    = "http://jabber.org/protocol/pubsub"
	nsData      = "jabber:x:data"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsCarbons   = "urn:xmpp:carbons:2"
	nsForward   = "urn:xmpp:forward:0"
)

// HookPriority is where push looks at messages for online accounts:
// below blocking (1000) and the archive (50), above carbons (-100), whose
// copies it need not see (it unwraps a carbon itself).
const HookPriority = 10

// MinInterval is the least time between two publishes to one
// registration. A variable for tests; set it before a server starts.
var MinInterval = 5 * time.Second

// MaxPerAccount bounds an account's registrations: an app that enables a
// new node on every start without disabling the old one must not grow the
// bucket without end; past it, enable is refused with resource-constraint
// (a re-enable of an existing registration is always accepted).
const MaxPerAccount = 20

// maxOptions bounds a stored publish-options form.
const maxOptions = 4 << 10

var bucket = []byte("push")

// ErrFull is the answer to an enable past MaxPerAccount.
var ErrFull = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
	Text: "too many push registrations: disable unused ones"}

// sessKey holds, on a session, the key of the registration it enabled.
type sessKey struct{}

type mod struct {
	srv *server.Server

	mu      sync.Mutex
	devs    map[string]*device  // by registration key
	pending map[string]asked    // iq id → what it asked
	cache   map[string][]string // account → its registration keys (see keys)
	gen     uint64              // counts invalidations
}

// device is the runtime state of one registration.
type device struct {
	key      string
	count    int
	sender   string
	lastSent time.Time
	timer    *time.Timer
	pending  string // id of the publish awaiting its answer
	probe    string // id of the disco#info probe awaiting its answer
}

// asked is a request the module sent: which registration, and whether it
// was the probe made at enable time.
type asked struct {
	key   string
	probe bool
}

// Register adds XEP-0357 to the server.
func Register(srv *server.Server) {
	m := &mod{srv: srv, devs: map[string]*device{}, pending: map[string]asked{}, cache: map[string][]string{}}
	srv.AddFeature(server.ToAccount, ns)
	srv.HandleIQ(server.ToAccount, "set", ns, "enable", m.enable)
	srv.HandleIQ(server.ToAccount, "set", ns, "disable", m.disable)
	// These only look (they never stop a message). For messages to
	// online accounts: below blocking (a blocked sender wakes nobody)
	// and the archive (the phone woken fetches what is on disk), see
	// HookPriority. For offline ones: before storage, which stops the
	// chain once it has the message.
	srv.Hook(server.MessageFull, HookPriority, func(st *server.Stanza) bool { m.live(st, true); return false })
	srv.Hook(server.MessageBare, HookPriority, func(st *server.Stanza) bool { m.live(st, false); return false })
	srv.Hook(server.MessageOffline, 1000, func(st *server.Stanza) bool { m.offline(st); return false })
	srv.Hook(server.IQResponse, 100, m.answer)
	server.Available.On(srv, func(a server.Availability) {
		// The device is here: what it missed is in its client now.
		if k, _ := a.Session.Value(sessKey{}).(string); k != "" {
			m.reset(k)
		}
	})
	// A member named in a room they are not in (issue 12): the room
	// sends them nothing, so no hook above sees it.
	server.Mentioned.On(srv, m.mentioned)
	srv.OnAccountDeleted(m.accountDeleted)
}

func regKey(user, j, node string) string { return string(store.Key(user, j, node)) }

func splitKey(k string) (user, j, node string) {
	p := strings.SplitN(k, "\x00", 3)
	if len(p) != 3 {
		return "", "", ""
	}
	return p[0], p[1], p[2]
}

// enable: XEP-0357 §5.
func (m *mod) enable(st *server.Stanza) (*stream.Element, error) {
	if !st.From.Bare().Equal(st.To.Bare()) {
		return nil, server.ErrForbidden
	}
	user := st.To.Localpart()
	el := st.El.FirstChild()
	j, err := jid.Parse(el.Get("jid"))
	if err != nil || el.Get("jid") == "" {
		return nil, server.ErrJIDMalformed
	}
	node := el.Get("node")
	if node == "" || len(node) > 1024 {
		return nil, &server.StanzaError{Type: "modify", Condition: "bad-request", Text: "a node is required"}
	}
	if j.Equal(m.srv.JID()) || j.Bare().Equal(st.To.Bare()) {
		return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "not an app server"}
	}
	rec := stream.New(ns, "enable", "jid", j.String(), "node", node)
	for _, c := range el.Children() {
		if c.Space == nsData && c.Local == "x" {
			if len(c.Append(nil, stream.NSClient)) > maxOptions {
				return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "publish-options too large"}
			}
			rec.Add(c.Copy())
			break
		}
	}
	key := regKey(user, j.String(), node)
	err = m.srv.Store.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		if b.Get([]byte(key)) == nil {
			n := 0
			c := b.Cursor()
			prefix := store.Key(user, "")
			for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
				n++
			}
			if n >= MaxPerAccount {
				return ErrFull
			}
		}
		return b.Put([]byte(key), rec.Append(nil, stream.NSClient))
	})
	m.invalidate(user)
	if err != nil {
		return nil, err
	}
	if st.Origin != nil {
		st.Origin.SetValue(sessKey{}, key)
	}
	m.reset(key)
	// Is it a push service at all? The answer comes through IQResponse.
	go m.probe(user, key, j)
	return nil, nil
}

// disable: XEP-0357 §6; without a node, every registration to the JID.
func (m *mod) disable(st *server.Stanza) (*stream.Element, error) {
	if !st.From.Bare().Equal(st.To.Bare()) {
		return nil, server.ErrForbidden
	}
	el := st.El.FirstChild()
	j, err := jid.Parse(el.Get("jid"))
	if err != nil || el.Get("jid") == "" {
		return nil, server.ErrJIDMalformed
	}
	user := st.To.Localpart()
	prefix := regKey(user, j.String(), el.Get("node"))
	if el.Get("node") == "" {
		prefix = string(store.Key(user, j.String(), ""))
	}
	if err := m.remove(user, func(k string) bool {
		if el.Get("node") == "" {
			return strings.HasPrefix(k, prefix)
		}
		return k == prefix
	}); err != nil {
		return nil, err
	}
	if st.Origin != nil {
		if k, _ := st.Origin.Value(sessKey{}).(string); k != "" && (k == prefix || el.Get("node") == "" && strings.HasPrefix(k, prefix)) {
			st.Origin.SetValue(sessKey{}, "")
		}
	}
	return nil, nil
}

// remove deletes user's registrations whose key match picks.
func (m *mod) remove(user string, match func(string) bool) error {
	var gone []string
	err := m.srv.Store.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		prefix := store.Key(user, "")
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
			if match(string(k)) {
				gone = append(gone, string(k))
			}
		}
		for _, k := range gone {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	m.invalidate(user)
	if err != nil {
		return err
	}
	m.mu.Lock()
	for _, k := range gone {
		if d := m.devs[k]; d != nil {
			if d.timer != nil {
				d.timer.Stop()
			}
			delete(m.pending, d.pending)
			delete(m.pending, d.probe)
			delete(m.devs, k)
		}
	}
	m.mu.Unlock()
	return nil
}

// registrations lists user's registration keys with their enable element.
func (m *mod) registrations(user string) map[string]*stream.Element {
	out := map[string]*stream.Element{}
	err := m.srv.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		prefix := store.Key(user, "")
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, v = c.Next() {
			el, err := stream.ParseElement(v)
			if err != nil {
				continue
			}
			out[string(k)] = el
		}
		return nil
	})
	if err != nil {
		m.srv.Log.Error("push: read registrations", "user", user, "err", err)
	}
	return out
}

func (m *mod) registration(key string) *stream.Element {
	var el *stream.Element
	m.srv.Store.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket); b != nil {
			if v := b.Get([]byte(key)); v != nil {
				el, _ = stream.ParseElement(v)
			}
		}
		return nil
	})
	return el
}

func (m *mod) accountDeleted(user string) {
	if err := m.remove(user, func(string) bool { return true }); err != nil {
		m.srv.Log.Error("push: delete registrations", "user", user, "err", err)
	}
}

// worth reports whether el is a message a sleeping phone should be woken
// for, for account user.
func worth(el *stream.Element, user string) bool {
	if el.Local != "message" {
		return false
	}
	switch el.Get("type") {
	case "", "normal", "chat":
	case "groupchat":
		body := el.ChildText(stream.NSClient, "body")
		// The same rule as the group chat's mentions (server.Names).
		return body != "" && server.Names(body, user)
	default:
		return false
	}
	if el.ChildText(stream.NSClient, "body") != "" {
		return true
	}
	for _, c := range el.Children() {
		switch {
		case c.Local == "encrypted" && (c.Space == "eu.siacs.conversations.axolotl" || c.Space == "urn:xmpp:omemo:2"):
			return true
		case c.Space == "urn:xmpp:openpgp:0" && c.Local == "openpgp", c.Space == "jabber:x:encrypted":
			return true
		case c.Space == nsCarbons && c.Local == "received":
			// Another resource got it; this one sleeps through it.
			if f := c.Child(nsForward, "forwarded"); f != nil {
				if in := f.Child(stream.NSClient, "message"); in != nil && in.Child(nsCarbons, "received") == nil {
					return worth(in, user)
				}
			}
		}
	}
	return false
}

// sender is who a message (or the message a carbon carries) is from.
func sender(el *stream.Element) string {
	if c := el.Child(nsCarbons, "received"); c != nil {
		if f := c.Child(nsForward, "forwarded"); f != nil {
			if in := f.Child(stream.NSClient, "message"); in != nil {
				return in.Get("from")
			}
		}
	}
	return el.Get("from")
}

// live: a message for an account with sessions online. Every device
// not connected right now is told: one whose session hibernates, and one
// whose stream is gone altogether (it will fetch the message from the
// archive when woken). A device with a live session gets it directly. An
// account with no available session is left to offline (the message goes
// to storage next), so that no device is told twice.
func (m *mod) live(st *server.Stanza, full bool) {
	user := st.To.Localpart()
	if user == "" || !m.srv.IsLocal(st.To) || !worth(st.El, user) {
		return
	}
	if !full {
		if all, _ := m.srv.Router.Available(user); len(all) == 0 {
			return
		}
	}
	keys := m.keys(user)
	if len(keys) == 0 {
		return
	}
	connected := map[string]bool{}
	for _, s := range m.srv.Router.Sessions(user) {
		if k, _ := s.Value(sessKey{}).(string); k != "" && !s.Detached() {
			connected[k] = true
		}
	}
	for _, k := range keys {
		if connected[k] {
			// Back (resumed, or logged in again without presence): what
			// it missed reached it; count afresh.
			m.reset(k)
		} else {
			m.notify(k, sender(st.El))
		}
	}
}

// offline: nobody online takes the message; every device is told.
func (m *mod) offline(st *server.Stanza) {
	user := st.To.Localpart()
	if !worth(st.El, user) {
		return
	}
	for _, k := range m.keys(user) {
		m.notify(k, sender(st.El))
	}
}

// mentioned: a group chat message named the account in a members-only
// room it is not in (the MUC module decides who was named and that they
// are absent). Every device not connected right now is told, as for a
// message (live), through the same counting and rate limit; the sender
// shown is the room occupant's address (room/nick), what the member's
// client shows. The woken client finds the message in the room's
// archive. A device that is connected gets nothing: its member is online
// and chose not to be in the room. Blocking the sender or the room
// silences it, as blocking a sender does for messages.
func (m *mod) mentioned(me server.Mention) {
	if me.User == "" {
		return
	}
	for _, s := range []string{me.Sender, me.Room} {
		if j, err := jid.Parse(s); err == nil && s != "" && m.srv.Blocks(me.User, j) {
			return
		}
	}
	keys := m.keys(me.User)
	if len(keys) == 0 {
		return
	}
	connected := map[string]bool{}
	for _, s := range m.srv.Router.Sessions(me.User) {
		if k, _ := s.Value(sessKey{}).(string); k != "" && !s.Detached() {
			connected[k] = true
		}
	}
	for _, k := range keys {
		if !connected[k] {
			m.notify(k, me.From)
		}
	}
}

// keys lists user's registrations, from a cache: messages to online
// accounts consult it, and most accounts have none, so the store is read
// once per account, not once per message. enable and remove invalidate
// the account's entry.
func (m *mod) keys(user string) []string {
	m.mu.Lock()
	k, ok := m.cache[user]
	gen := m.gen
	m.mu.Unlock()
	if ok {
		return k
	}
	regs := m.registrations(user)
	k = make([]string, 0, len(regs))
	for key := range regs {
		k = append(k, key)
	}
	sort.Strings(k)
	m.mu.Lock()
	if m.gen == gen {
		// Not if a change came in while the store was read: what was
		// read may be older than it.
		m.cache[user] = k
	}
	m.mu.Unlock()
	return k
}

func (m *mod) invalidate(user string) {
	m.mu.Lock()
	delete(m.cache, user)
	m.gen++
	m.mu.Unlock()
}

// reset starts a registration's count afresh (the device is online).
func (m *mod) reset(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d := m.devs[key]; d != nil {
		d.count, d.sender = 0, ""
		if d.timer != nil {
			d.timer.Stop()
			d.timer = nil
		}
	}
}

// notify counts a message for a registration and publishes now, or at the
// end of the current interval. The decision and the snapshot of what is
// published are taken under one lock, so a burst cannot start two
// publishes at once.
func (m *mod) notify(key, from string) {
	m.mu.Lock()
	d := m.devs[key]
	if d == nil {
		d = &device{key: key}
		m.devs[key] = d
	}
	d.count++
	d.sender = from
	if d.timer != nil {
		m.mu.Unlock()
		return // the publish at the end of the interval includes it
	}
	if wait := MinInterval - time.Since(d.lastSent); wait > 0 {
		d.timer = time.AfterFunc(wait, func() { m.fire(key) })
		m.mu.Unlock()
		return
	}
	id, count, sender := m.takeLocked(d)
	m.mu.Unlock()
	// Not on the caller's goroutine: routing the publish may bounce
	// straight back into IQResponse, and the caller (a sender's reader)
	// must not wait for an app server anyway.
	go m.publish(key, id, count, sender)
}

// takeLocked starts a publish of d's summary: its id, count and sender.
func (m *mod) takeLocked(d *device) (id string, count int, sender string) {
	d.lastSent = time.Now()
	delete(m.pending, d.pending)
	d.pending = newID()
	m.pending[d.pending] = asked{key: d.key}
	return d.pending, d.count, d.sender
}

// fire publishes what was counted during an interval (the timer).
func (m *mod) fire(key string) {
	m.mu.Lock()
	d := m.devs[key]
	if d == nil {
		m.mu.Unlock()
		return
	}
	d.timer = nil
	if d.count == 0 {
		m.mu.Unlock()
		return
	}
	id, count, sender := m.takeLocked(d)
	m.mu.Unlock()
	m.publish(key, id, count, sender)
}

// publish sends the summary to the registration's app server.
func (m *mod) publish(key, id string, count int, from string) {
	user, j, node := splitKey(key)
	reg := m.registration(key)
	if reg == nil {
		// Disabled meanwhile (a session may still name it).
		m.mu.Lock()
		if d := m.devs[key]; d != nil && d.timer == nil {
			delete(m.pending, d.pending)
			delete(m.devs, key)
		}
		m.mu.Unlock()
		return
	}
	form := stream.New(nsData, "x", "type", "form")
	field := func(v, val string) {
		form.Add(stream.New(nsData, "field", "var", v).Add(stream.New(nsData, "value").AddText(val)))
	}
	field("FORM_TYPE", nsSummary)
	field("message-count", strconv.Itoa(count))
	if from != "" {
		field("last-message-sender", from)
	}
	ps := stream.New(nsPubsub, "pubsub").Add(
		stream.New(nsPubsub, "publish", "node", node).Add(
			stream.New(nsPubsub, "item").Add(stream.New(ns, "notification").Add(form))))
	if opts := reg.Child(nsData, "x"); opts != nil {
		ps.Add(stream.New(nsPubsub, "publish-options").Add(opts))
	}
	iq := stream.New(stream.NSClient, "iq", "type", "set", "id", id,
		"from", user+"@"+m.srv.Domain, "to", j).Add(ps)
	m.srv.Route(iq)
}

// probe asks a new registration's JID whether it is a push service.
func (m *mod) probe(user, key string, j jid.JID) {
	id := newID()
	m.mu.Lock()
	d := m.devs[key]
	if d == nil {
		d = &device{key: key}
		m.devs[key] = d
	}
	delete(m.pending, d.probe)
	d.probe = id
	m.pending[id] = asked{key: key, probe: true}
	m.mu.Unlock()
	m.srv.Route(stream.New(stream.NSClient, "iq", "type", "get", "id", id,
		"from", user+"@"+m.srv.Domain, "to", j.String()).Add(stream.New(nsDiscoInfo, "query")))
}

// answer takes the app server's answers to publishes and probes.
func (m *mod) answer(st *server.Stanza) bool {
	id := st.El.Get("id")
	m.mu.Lock()
	a, ok := m.pending[id]
	if ok {
		delete(m.pending, id)
		if d := m.devs[a.key]; d != nil {
			if d.pending == id {
				d.pending = ""
			}
			if d.probe == id {
				d.probe = ""
			}
		}
	}
	m.mu.Unlock()
	if !ok {
		return false
	}
	user, j, node := splitKey(a.key)
	if !strings.EqualFold(st.From.String(), j) || st.To.Localpart() != user {
		// Not from the app server (ids are random, but an answer must
		// come from whom it was asked).
		return true
	}
	if why := refusal(st, a.probe); why != "" {
		m.srv.Log.Info("push: registration disabled", "user", user, "jid", j, "node", node, "why", why)
		if err := m.remove(user, func(k string) bool { return k == a.key }); err != nil {
			m.srv.Log.Error("push: disable", "user", user, "err", err)
		}
	}
	return true
}

// refusal says why an answer ends a registration ("" if it does not).
// The probe at enable time must succeed and name a push service. A
// publish's error ends it unless it may pass: type wait, or the app
// server's domain unreachable for now (an app server restarting must not
// cost every phone its registration).
func refusal(st *server.Stanza, probe bool) string {
	if st.Type() != "error" {
		if q := st.El.Child(nsDiscoInfo, "query"); probe && (q == nil || !isPushService(q)) {
			return "not a push service (no pubsub/push identity)"
		}
		return ""
	}
	e := st.El.Child(stream.NSClient, "error")
	cond := "?"
	if e != nil && e.FirstChild() != nil {
		cond = e.FirstChild().Local
	}
	if !probe && (e != nil && e.Get("type") == "wait" || cond == "remote-server-not-found" || cond == "remote-server-timeout") {
		return ""
	}
	return "app server answered " + cond
}

func isPushService(q *stream.Element) bool {
	for _, c := range q.Children() {
		if c.Local == "identity" && c.Get("category") == "pubsub" && c.Get("type") == "push" {
			return true
		}
	}
	return false
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "push-" + base64.RawURLEncoding.EncodeToString(b)
}
