// Package mam is the message archive of accounts (XEP-0313 mam:2, with
// XEP-0359 stanza ids): every chat or normal message with a body (or a
// store hint, or an encrypted payload) routed to or from a local account
// is archived for that account, and the copy delivered to the recipient
// carries <stanza-id by='the account'/> with its archive id. Clients page
// through the archive by with/start/end/before-id/after-id/ids and RSM.
// Room archives are mod/muc's own (the room is the archive's owner there).
//
// # Acknowledged means durable
//
// The archive write is the durability point for every message to a local
// account, online, hibernating or offline. It is started in the
// MessageFull/MessageBare hooks, before the message is handed to any
// session, with server.Commit: the record joins the store's commit queue
// (store/commitq.go: everything queued while the previous commit ran
// shares the next transaction, one commit — bbolt's two fdatasyncs — per
// batch) and the sender's reader goes on. Until the commit is done the
// sender's XEP-0198 acknowledgements stop short of the message
// (server.DurableCount; smacks sends the owed <a/> when it is done), its
// next iq waits for it (an answer still promises that everything before
// it is stored), and a resumption waits for it. The archive id is given
// before the commit (idAlloc), so the delivered copy carries its
// stanza-id; a query waits until every id given before it is committed,
// so that paging "after" an id never skips a message still being
// written. Messages the recipient's preferences keep out of the archive,
// no-store/no-permanent-store messages and bare chat states are not made
// durable this way (an offline recipient's still go through offline
// storage, which commits before it returns).
//
// # Offline storage and the archive agree
//
// A client that syncs from the archive must not be sent the same
// messages again from offline storage. Three rules, after Prosody and
// ejabberd:
//
//   - Offline copies carry the archive's stanza-id (it is added before
//     delivery falls back to offline storage, and stream management's
//     re-routing keeps it), so a client that de-duplicates by stanza-id
//     (XEP-0359 §5, as Conversations does) never shows one twice.
//   - Every page a session reads from its own archive fires
//     server.ArchiveSent with the ids it carried, and the offline module
//     deletes those messages from its store, as ejabberd does for clients
//     that use MAM: a phone that queries the archive before its initial
//     presence gets each message once, from the archive. The price, as
//     with ejabberd: another device of the account that only reads
//     offline storage no longer gets those messages from it.
//   - A session whose client queried the archive does not re-route its
//     archived but unacknowledged messages to offline storage when it
//     ends (server.Redeliver; Prosody's mod_smacks does the same for
//     sessions that requested MAM): the client fetches them from the
//     archive after the last stanza-id it saw.
//
// # Where records live (journal.go, segment.go)
//
// A commit appends its messages to one journal bucket (the durability
// point); every few seconds (or 32,768 messages, or 4,096 of one
// account's) a merge indexes them into per-account segments (runs of
// records, one bbolt value each) that refer to the journal value holding
// each message's XML, stored once for both parties; merged values stay
// until retention. Every reader reads both in its own transaction, so
// nothing waits for the merge. Records are charged to the account's
// budget, and the cap applied, when merged.
//
// # Cost (measured 2026-12-07, 2-core VM shared with other builds)
//
// hearth-bench's saturation phase (50 pairs, server pinned to one core),
// interleaved with a build of the same commit without the archive:
// 88.1-103.1k messages per server CPU-second with it, 184.0-215.3k
// without; medians of four series 1.93-2.02× (the target is 2×;
// the VM's noise is as large as the margin). Of ~10-11.5 µs per message
// against ~5.1-5.7 (pprof at saturation): this hook ~2.2 µs (serializing
// the stanza for the journal ~0.5, queueing the commit ~0.4), the
// journal commits ~1.25 µs (inherent: acknowledged means on disk), the
// merge ~0.9 µs, allocation and GC ~1.5 µs more. At 1,000 msg/s ~2.3-2.5
// KB written to disk per message (20.3 KB with one bbolt entry per
// record); a 50-message page from a 100,000-message archive 1.1-1.4 ms
// right after the fill (BenchmarkPage50Of100k). bench/README's archive
// section has each step that got here from 3.07× and what did not help
// (a merge every 16,384 messages without the parties' filter: +8%, but a
// query decoded 4× more journal). Since then the message is serialized
// once for the journal and the delivery (server.Serialized; sidSpan
// leaves the stanza-id out of the stored copy): BenchmarkDeliver's
// archive-on CPU per message 3-5% lower, pair by pair. On another VM (7
// Dec, evening) nine interleaved saturation pairs of this code gave a
// median of 1.87× (1.57-2.06), nine of the code before it in the same
// series 1.87× (1.62-2.05): the VM's noise hides a few percent.
// Commands: hearth-bench -servers hearth -xmppd BIN -skip
// idle,ws,rates,logins,upload,muc,pep,mam,offline (saturation), or -skip
// idle,ws,sat,logins,upload,muc,pep,mam,offline -rates 1000 (disk bytes
// per message and fsyncs/s are in its table).
//
// # Hooks
//
// Priority 50 on MessageOut, MessageFull and MessageBare: modules that
// refuse a message (blocking) hook above it, so refused messages are not
// archived; modules that copy it (carbons) hook below it, so their copies
// carry the stanza-id.
package mam

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Namespaces.
const (
	NS         = "urn:xmpp:mam:2"
	NSExtended = NS + "#extended"
	nsSID      = "urn:xmpp:sid:0"
	nsHints    = "urn:xmpp:hints"
	nsForward  = "urn:xmpp:forward:0"
	nsDelay    = "urn:xmpp:delay"
	nsRSM      = "http://jabber.org/protocol/rsm"
	nsData     = "jabber:x:data"
)

// HookPriority is where the archive sits in the message hooks (see the
// package doc).
const HookPriority = 50

type mod struct {
	srv       *server.Server
	now       func() time.Time
	retention atomic.Int64 // time.Duration

	ids     idAlloc
	prefs   prefsCache
	sweepMu sync.Mutex
	sweeper sweeper
	stopped atomic.Bool

	mergeMu      sync.Mutex // one journal merge at a time
	merges       merger
	mergeArena   arena        // the merge's values (under mergeMu)
	mergeScratch mergeScratch // (under mergeMu)
	queue        *queueLocal  // the commit queue goroutine's memory
	xmlBufs      sync.Pool    // *[]byte: archive serializes stanzas into them
}

type modKey struct{}

func of(srv *server.Server) *mod {
	return server.State(srv, modKey{}, func() *mod {
		m := &mod{srv: srv, now: time.Now, queue: newQueueLocal()}
		m.queue.merges = &m.merges.begun
		m.ids.init()
		m.retention.Store(int64(DefaultRetention))
		return m
	})
}

// SetRetention sets how long messages are kept (the appliance config's
// archive section; mods_mam.go). Zero or less keeps the default.
func SetRetention(srv *server.Server, d time.Duration) {
	if d <= 0 {
		d = DefaultRetention
	}
	of(srv).retention.Store(int64(d))
}

// Register plugs the account archive into srv.
func Register(srv *server.Server) {
	m := of(srv)
	srv.AddFeature(server.ToAccount, NS)
	srv.AddFeature(server.ToAccount, NSExtended)
	srv.Hook(server.MessageOut, HookPriority, m.out)
	srv.Hook(server.MessageFull, HookPriority, m.in)
	srv.Hook(server.MessageBare, HookPriority, m.in)
	srv.HandleIQ(server.ToAccount, "get", NS, "query", m.form)
	srv.HandleIQ(server.ToAccount, "set", NS, "query", m.query)
	srv.HandleIQ(server.ToAccount, "get", NS, "prefs", m.getPrefs)
	srv.HandleIQ(server.ToAccount, "set", NS, "prefs", m.setPrefs)
	srv.HandleIQ(server.ToAccount, "get", NS, "metadata", m.metadata)
	// An imported account (xmppd/portable) has its archive in the store:
	// whatever was cached for its name before is read again.
	server.AccountImported.On(srv, func(user string) {
		m.ids.forget(user)
		m.prefs.forget(user)
	})
	srv.OnAccountDeleted(func(user string) {
		m.ids.forget(user)
		m.prefs.forget(user)
		if err := m.deleteUser(user); err != nil {
			srv.Log.Error("mam: delete account data", "user", user, "err", err)
		}
	})
	time.AfterFunc(sweepEvery, m.tick)
	// What a previous run journaled and never merged (a stop, kill -9)
	// is merged soon; it is readable meanwhile.
	m.mergeLater()
}

// tick runs one retention step and schedules the next; it stops once the
// database is closed (the daemon stopped).
func (m *mod) tick() {
	if m.stopped.Load() {
		return
	}
	m.sweepMu.Lock()
	cutoff := timeID(m.now().Add(-time.Duration(m.retention.Load())))
	_, err := m.sweep(cutoff)
	m.sweepMu.Unlock()
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		m.stopped.Store(true)
		return
	}
	if err != nil {
		m.srv.Log.Error("mam: retention", "err", err)
	}
	time.AfterFunc(sweepEvery, m.tick)
}

// archivable: a chat or normal message a person reads later (XEP-0313
// §5 leaves the choice to the server; like Prosody: a body, an explicit
// store hint, or an end-to-end encrypted payload, whose fallback body
// some clients leave out), unless the sender asked otherwise (XEP-0334).
// A bare chat state is not archived (nor made durable: it is stale by the
// time anybody could read it).
func archivable(el *stream.Element) bool {
	switch el.Get("type") {
	case "", "normal", "chat":
	default:
		return false
	}
	if el.Child(nsHints, "no-store") != nil || el.Child(nsHints, "no-permanent-store") != nil {
		return false
	}
	if el.Child(stream.NSClient, "body") != nil || el.Child(nsHints, "store") != nil {
		return true
	}
	for _, c := range el.Children() {
		switch c.Space {
		case "eu.siacs.conversations.axolotl", "urn:xmpp:omemo:2", "urn:xmpp:openpgp:0", "jabber:x:encrypted":
			return true
		}
	}
	return false
}

// stripIDs removes stanza-ids that claim to be given by local JIDs (or,
// with only set, by that JID): XEP-0359 §3.3, a client must not be able to
// forge the server's ids (one with the recipient's by would also stop the
// archive from storing the message, see in).
func stripIDs(srv *server.Server, el *stream.Element, only string) {
	out := el.Nodes[:0]
	for _, n := range el.Nodes {
		if n.El != nil && n.El.Space == nsSID && n.El.Local == "stanza-id" {
			by := n.El.Get("by")
			j, err := jid.Parse(by)
			if only == "" && (err != nil || srv.IsLocal(j)) || only != "" && by == only {
				continue
			}
		}
		out = append(out, n)
	}
	for i := len(out); i < len(el.Nodes); i++ {
		el.Nodes[i] = stream.Node{}
	}
	el.Nodes = out
}

// idFor returns the stanza-id el carries from by ("" if none).
func idFor(el *stream.Element, by string) string {
	for _, c := range el.Children() {
		if c.Space == nsSID && c.Local == "stanza-id" && c.Get("by") == by {
			return c.Get("id")
		}
	}
	return ""
}

func (m *mod) bare(user string) string { return user + "@" + m.srv.Domain }

// localUser is the account behind j, "" if j is not a local account.
func (m *mod) localUser(j jid.JID) string {
	if j.Localpart() == "" || !m.srv.IsLocal(j) {
		return ""
	}
	return j.Localpart()
}

// localAddr is localUser(j) and its bare JID, cut from st's attribute
// attr when server.FromClient set it to exactly j's string (a local
// client's stanza, see peerOf): jid.JID's parts are strings made on
// every call (four per message here, and the bare JID a fifth). The
// domain is checked on j (IsLocal).
func (m *mod) localAddr(st *server.Stanza, attr string, j jid.JID) (user, bare string) {
	if !m.srv.IsLocal(j) {
		return "", ""
	}
	if s := clientAttr(st, attr); s != "" {
		if i := strings.IndexByte(s, '/'); i >= 0 {
			s = s[:i]
		}
		if i := strings.IndexByte(s, '@'); i > 0 {
			return s[:i], s
		}
		return "", ""
	}
	user = m.localUser(j)
	if user == "" {
		return "", ""
	}
	return user, m.bare(user)
}

// out is the MessageOut hook: a local client's message, before routing.
// Forged ids go; a message leaving the domain (a service such as a room,
// or another server) is archived for its sender here, since no hook of
// ours sees it again. Messages to local accounts are archived by in, for
// both parties in one transaction.
func (m *mod) out(st *server.Stanza) bool {
	stripIDs(m.srv, st.El, "")
	if m.srv.IsLocal(st.To) || !archivable(st.El) || st.To.Domainpart() == "" {
		return false
	}
	sender := m.localUser(st.From)
	if sender == "" {
		return false
	}
	if !m.wants(sender, st.To) {
		return false
	}
	m.archive(st, []entry{{user: sender, dir: dirOut, peer: st.To.String(), el: st.El}}, "")
	return false
}

// in is the MessageFull and MessageBare hook: a message for a local
// account, archived (with its sender's copy when the sender is local too)
// and committed before it is delivered.
func (m *mod) in(st *server.Stanza) bool {
	user, by := m.localAddr(st, "to", st.To)
	if user == "" || !archivable(st.El) {
		return false
	}
	if id := idFor(st.El, by); id != "" {
		if m.ours(user, id) {
			// Archived already: MessageFull ran, the resource could
			// not take it and it fell back to MessageBare.
			return false
		}
		// Forged (clients' are stripped by out; this is for stanzas
		// from elsewhere, such as another server): XEP-0359 §3.3.
		stripIDs(m.srv, st.El, by)
	}
	if !m.srv.AccountExists(user) {
		return false // bounced by the core
	}
	var two [2]entry // no allocation for the usual one or two parties
	entries := two[:0]
	if m.wants(user, st.From) {
		entries = append(entries, entry{user: user, dir: dirIn, peer: peerOf(st, "from", st.From), el: st.El})
	}
	if sender, _ := m.localAddr(st, "from", st.From); sender != "" && sender != user && m.wants(sender, st.To) {
		entries = append(entries, entry{user: sender, dir: dirOut, peer: peerOf(st, "to", st.To), el: st.El})
	}
	if len(entries) == 0 {
		return false
	}
	if entries[0].user != user {
		by = "" // the recipient keeps no record: its copy gets no stanza-id
	}
	m.archive(st, entries, by)
	return false
}

// peerOf is j's string form: for a local client's stanza its attribute
// attr, which server.FromClient set to exactly that (the session's JID as
// from, the normalized to), else made (jid.JID.String made three strings
// per party, 4% of the server's CPU at saturation).
func peerOf(st *server.Stanza, attr string, j jid.JID) string {
	if s := clientAttr(st, attr); s != "" {
		return s
	}
	return j.String()
}

// clientAttr is st's attribute attr when st is a local client's stanza,
// whose from and to server.FromClient set to exactly its addresses'
// string forms; "" otherwise.
func clientAttr(st *server.Stanza, attr string) string {
	if st.Origin == nil {
		return ""
	}
	return st.El.Get(attr)
}

// stanzaID is <stanza-id xmlns='urn:xmpp:sid:0' id by/> for the first
// entry's id, built in p (stream.New made three allocations for every
// archived message, FormatID a fourth, p a fifth): the id's 16 hex digits
// live in the same object as the element, which nothing modifies once it
// is built.
func (p *pendingArchive) stanzaID(by string) *stream.Element {
	s := &p.sid
	appendHexID(s.hex[:0], p.jes[0].id)
	s.attr = [2]stream.Attr{{Local: "id", Value: unsafe.String(&s.hex[0], len(s.hex))}, {Local: "by", Value: by}}
	s.el = stream.Element{Space: nsSID, Local: "stanza-id", Attr: s.attr[:]}
	return &s.el
}

// sidOpen is how the stanza-id archive adds begins when serialized in a
// message (stanzaID's attributes, in that order).
var sidOpen = []byte("<stanza-id xmlns='" + nsSID + "' id='")

// sidSpan finds the stanza-id element with id hex and by in xml, the
// serialized message it was added to last: its byte range, to be left out
// of the stored copy. JIDs hold no character that is escaped in an
// attribute, so its bytes are known (TestSIDSpan). Not found (never,
// unless the serializer wrote it otherwise): an empty range, and the
// stored copy keeps it — a query's result then carries it beside the
// owner's, which XEP-0359 allows (several ids, each with its by).
func sidSpan(xml, hex []byte, by string) [2]int {
	i := bytes.LastIndex(xml, sidOpen)
	if i < 0 {
		return [2]int{}
	}
	rest := xml[i+len(sidOpen):]
	if !bytes.HasPrefix(rest, hex) {
		return [2]int{}
	}
	rest = rest[len(hex):]
	for _, part := range [...]string{"' by='", by, "'/>"} {
		if len(rest) < len(part) || string(rest[:len(part)]) != part {
			return [2]int{}
		}
		rest = rest[len(part):]
	}
	return [2]int{i, len(xml) - len(rest)}
}

// ours reports whether id is an archive id this server gave to a message
// of user: being committed, or in the archive.
func (m *mod) ours(user, id string) bool {
	n, ok := ParseID(id)
	if !ok {
		return false
	}
	if m.ids.isPending(user, n) {
		return true
	}
	found := false
	_ = m.srv.Store.View(func(tx *bolt.Tx) error {
		found = exists(tx, user, n)
		return nil
	})
	return found
}

// wants applies user's archiving preferences to a message with peer.
func (m *mod) wants(user string, peer jid.JID) bool {
	return m.prefs.get(m.srv, user).archives(m.srv, user, peer)
}

// archive commits entries for st in one group-committed transaction
// (server.Commit: for a local client's message in the background, its
// acknowledgement held back until done), with ids allocated before the
// commit. With by set (a message for a local account who archives it),
// st's element gets its stanza-id (the first entry's id, by the
// recipient), and the one serialization serves both: the core delivers
// these bytes instead of serializing the element again
// (server.Serialized), and the journal stores them without the
// stanza-id's (the stored copy is the stanza without ids of ours; a query
// adds the owner's).
func (m *mod) archive(st *server.Stanza, entries []entry, by string) {
	now := m.now()
	// One allocation for what the commit needs (a slice for the ids, one
	// for the entries and two closures capturing several variables each
	// were a sixth of what the hook allocated). The XML goes into a
	// pooled buffer, given back once the journal has its copy (the
	// commit's done) and the core has delivered it (Done).
	p := &pendingArchive{m: m}
	p.jes = p.two[:0]
	if len(entries) > len(p.two) {
		p.jes = make([]jEntry, 0, len(entries))
	}
	for _, e := range entries {
		p.jes = append(p.jes, jEntry{user: e.user, id: m.ids.alloc(m.srv, e.user, now), dir: e.dir, peer: e.peer})
	}
	if by != "" {
		st.El.Add(p.stanzaID(by))
	}
	p.bp, _ = m.xmlBufs.Get().(*[]byte)
	if p.bp == nil {
		p.bp = new([]byte)
	}
	p.xml = st.El.Append((*p.bp)[:0], "")
	p.refs.Store(1)
	if by != "" {
		p.cut = sidSpan(p.xml, p.sid.hex[:], by)
		p.refs.Store(2)
		st.SetSerialized(p)
	}
	m.srv.Commit(st, p.write, p.done)
}

// pendingArchive is one message on its way to the journal. (jes, not
// the entries: the parsed stanza is not kept alive until the commit.)
type pendingArchive struct {
	m   *mod
	two [2]jEntry
	jes []jEntry
	xml []byte
	cut [2]int // the stanza-id's bytes in xml, left out of the journal
	bp  *[]byte
	// refs: the commit, and the delivery when the core was given xml
	// (Bytes, Done); the last one gives the buffer back.
	refs atomic.Int32
	sid  struct { // the delivered copy's stanza-id (stanzaID)
		el   stream.Element
		attr [2]stream.Attr
		hex  [16]byte
	}
}

func (p *pendingArchive) write(tx *bolt.Tx) error {
	return journal(p.m.srv.Store, tx, p.jes, p.xml, p.cut, p.m.queue)
}

func (p *pendingArchive) done(err error) {
	m := p.m
	for _, e := range p.jes {
		m.ids.done(e.user, e.id)
	}
	p.release()
	if err != nil {
		// Delivered anyway: losing the archive copy is better than
		// losing the message (the log says why, e.g. a full budget).
		m.srv.Log.Error("mam: archive", "user", p.jes[0].user, "err", err)
		return
	}
	m.journaled()
}

// Bytes is the stored XML, which the core delivers (server.Serialized).
func (p *pendingArchive) Bytes() []byte { return p.xml }

// Done: the core has delivered the message.
func (p *pendingArchive) Done() { p.release() }

// release gives the XML buffer back to the pool once neither the commit
// nor the delivery reads it.
func (p *pendingArchive) release() {
	if p.refs.Add(-1) != 0 {
		return
	}
	if cap(p.xml) <= 64<<10 {
		*p.bp = p.xml[:0]
		p.m.xmlBufs.Put(p.bp)
	}
	p.xml = nil
}
