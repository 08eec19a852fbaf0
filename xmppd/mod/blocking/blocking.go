// Package blocking is XEP-0191 Blocking Command: a member keeps a list of
// addresses that may not reach them. Nothing from a blocked address is
// delivered to the member (messages and iq requests bounce with
// service-unavailable, presence vanishes silently), nothing the member
// sends reaches it (not-acceptable with <blocked/>, presence silently
// dropped), and each side's presence disappears from the other's view the
// moment the block is made.
//
// The lists live in bbolt (bucket "blocklist", key user NUL jid), charged
// to the member's storage budget, and in memory: every message and
// presence the server routes asks blocks, which must not read the disk.
package blocking

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Namespaces.
const (
	NS       = "urn:xmpp:blocking"
	NSErrors = "urn:xmpp:blocking:errors"
)

// Limits. XEP-0191 sets none; a client that blocks 100,000 addresses (a
// probe of the issue) would make every routed stanza's check and every
// blocklist answer ever bigger. A family box's members block a handful of
// spammers: 1,000 addresses, and at most 256 KiB of them, leave ample
// room.
const (
	MaxItems = 1000
	MaxBytes = 256 << 10
)

// Kind is what block lists are charged as in the account's budget.
const Kind = "blocklist"

// Priority of the filtering hooks: before every other module (carbons,
// archive, offline storage, presence) sees what is blocked.
const Priority = 1000

// Errors.
var (
	// ErrBlocked answers what the member sends to a blocked address (§3.3).
	ErrBlocked = &server.StanzaError{Type: "cancel", Condition: "not-acceptable",
		Extra: stream.New(NSErrors, "blocked")}
	// ErrFull answers a block that would take the list past its limits.
	ErrFull = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
		Text: "the block list is full (" + strconv.Itoa(MaxItems) + " addresses): unblock some first"}
	// ErrTooMany answers a single request with more items than a list may
	// hold at all: no waiting makes it acceptable.
	ErrTooMany = &server.StanzaError{Type: "modify", Condition: "not-acceptable",
		Text: "at most " + strconv.Itoa(MaxItems) + " addresses may be blocked"}
)

// interestedKey marks a session that asked for the block list: only those
// get pushes (§3.3).
type interestedKey struct{}

type mod struct {
	srv *server.Server

	// wmu serialises changes (store, then memory, then pushes), so two
	// resources blocking at once push in the order they were stored.
	wmu sync.Mutex

	mu    sync.RWMutex
	lists map[string]map[string]bool // user → normalised JIDs; only non-empty lists

	// own holds the unavailable presence the module itself sends to a
	// contact just blocked: the outbound filter lets exactly those pass.
	own     sync.Map // *stream.Element → struct{}
	pushSeq atomic.Uint64
}

type modKey struct{}

func of(srv *server.Server) *mod {
	return server.State(srv, modKey{}, func() *mod { return &mod{srv: srv, lists: map[string]map[string]bool{}} })
}

// Register adds blocking to srv.
func Register(srv *server.Server) {
	m := of(srv)
	if err := m.load(); err != nil {
		// Only a failing disk gets here; the lists are then empty until
		// the next start, and each block is stored anew.
		srv.Log.Error("blocking: load lists", "err", err)
	}
	srv.AddFeature(server.ToServer, NS)
	srv.HandleIQ(server.ToAccount, "get", NS, "blocklist", m.get)
	srv.HandleIQ(server.ToAccount, "set", NS, "block", m.block)
	srv.HandleIQ(server.ToAccount, "set", NS, "unblock", m.unblock)
	srv.Hook(server.MessageOut, Priority, m.messageOut)
	srv.Hook(server.MessageFull, Priority, m.messageIn)
	srv.Hook(server.MessageBare, Priority, m.messageIn)
	srv.Hook(server.PresenceOut, Priority, m.presenceOut)
	srv.Hook(server.PresenceIn, Priority, m.presenceIn)
	srv.Hook(server.StanzaRemote, Priority+100, m.remote)
	srv.Hook(server.IQFilter, Priority, m.iq)
	srv.OnAccountDeleted(m.deleteUser)
	// An account imported while the server runs brings its list in the
	// store only; the lists in memory were read at start (imported.go).
	server.AccountImported.On(srv, m.reloadUser)
	srv.SetBlocklist(m)
}

// Blocks reports whether user's list blocks j (XEP-0191 §4 matching:
// the full JID, the bare JID, domain/resource, the domain or a parent
// domain). The user's own account and the server itself are never
// blocked: a member who blocks their own domain can still unblock it.
// Other modules reach it as server.Blocks.
func (m *mod) Blocks(user string, j jid.JID) bool { return m.blocks(user, j) }

func (m *mod) blocks(user string, j jid.JID) bool {
	d := j.Domainpart()
	if d == "" {
		return false
	}
	m.mu.RLock()
	l := m.lists[user]
	m.mu.RUnlock()
	if l == nil {
		return false
	}
	local, res := j.Localpart(), j.Resourcepart()
	if strings.EqualFold(d, m.srv.Domain) && (local == user || local == "" && res == "") {
		return false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if local != "" {
		bare := local + "@" + d
		if res != "" && l[bare+"/"+res] || l[bare] {
			return true
		}
	}
	if res != "" && l[d+"/"+res] {
		return true
	}
	for {
		if l[d] {
			return true
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return false
		}
		d = d[i+1:]
	}
}

// self reports whether the user's own session sent st to its own account
// (the list iqs, roster, …): never filtered.
func self(st *server.Stanza) bool {
	return st.Origin != nil && st.To.Localpart() == st.Origin.User && strings.EqualFold(st.To.Domainpart(), st.From.Domainpart())
}

// localUser is the account j names on this server, or "".
func (m *mod) localUser(j jid.JID) string {
	if j.Localpart() == "" || !m.srv.IsLocal(j) {
		return ""
	}
	return j.Localpart()
}

// messageOut refuses what the member sends to a blocked address.
func (m *mod) messageOut(st *server.Stanza) bool {
	if self(st) || !m.blocks(st.Origin.User, st.To) {
		return false
	}
	m.srv.Bounce(st, ErrBlocked) // nothing for an error
	return true
}

// messageIn refuses a message from an address its recipient blocked:
// chat and normal messages bounce (§3.3: service-unavailable, as if the
// member were offline); headlines (PEP notifications, which the blocked
// account's server sends on its own) and group chat vanish, so that the
// blocked side gets no error for what it never typed.
func (m *mod) messageIn(st *server.Stanza) bool {
	user := m.localUser(st.To)
	if user == "" || !m.blocks(user, st.From) {
		return false
	}
	switch st.Type() {
	case "", "normal", "chat":
		m.srv.Bounce(st, server.ErrServiceUnavailable)
	}
	return true
}

// presenceOut drops directed presence (availability, probes and
// subscription requests alike) the member sends to a blocked address:
// presence is never answered with an error here either.
func (m *mod) presenceOut(st *server.Stanza) bool {
	if st.To.Domainpart() == "" || self(st) {
		return false
	}
	return m.blocks(st.Origin.User, st.To)
}

// presenceIn drops presence from an address its recipient blocked, and
// the member's availability (broadcasts, probe answers) to addresses the
// member blocked. The subscription changes the server makes on the
// member's behalf (a roster removal's unsubscribe) still pass, so both
// rosters stay consistent.
func (m *mod) presenceIn(st *server.Stanza) bool {
	if user := m.localUser(st.To); user != "" && m.blocks(user, st.From) {
		return true
	}
	return m.outboundAvailability(st)
}

// remote applies the outbound rule to presence for another server.
func (m *mod) remote(st *server.Stanza) bool {
	return st.El.Local == "presence" && m.outboundAvailability(st)
}

func (m *mod) outboundAvailability(st *server.Stanza) bool {
	switch st.Type() {
	case "", "unavailable", "probe":
	default:
		return false
	}
	from := m.localUser(st.From)
	if from == "" || !m.blocks(from, st.To) {
		return false
	}
	if _, ok := m.own.Load(st.El); ok {
		return false
	}
	return true
}

// iq refuses iq requests between a member and an address they blocked,
// either way, and drops answers.
func (m *mod) iq(st *server.Stanza) bool {
	req := st.Type() == "get" || st.Type() == "set"
	if st.Origin != nil && !self(st) && m.blocks(st.Origin.User, st.To) {
		if req {
			m.srv.Bounce(st, ErrBlocked)
		}
		return true
	}
	if user := m.localUser(st.To); user != "" && m.blocks(user, st.From) {
		if req {
			m.srv.Bounce(st, server.ErrServiceUnavailable)
		}
		return true
	}
	return false
}

// owner checks that a list iq comes from the account's own session.
func owner(st *server.Stanza) (string, error) {
	if st.Origin == nil || st.To.Localpart() != st.Origin.User || st.To.Resourcepart() != "" {
		return "", server.ErrForbidden
	}
	return st.Origin.User, nil
}

func (m *mod) get(st *server.Stanza) (*stream.Element, error) {
	user, err := owner(st)
	if err != nil {
		return nil, err
	}
	st.Origin.SetValue(interestedKey{}, true)
	out := stream.New(NS, "blocklist")
	for _, j := range m.list(user) {
		out.Add(stream.New(NS, "item", "jid", j))
	}
	return out, nil
}

// items parses the <item/> children of a block or unblock: each must be
// an <item jid='…'/> (bad-request) with a valid JID (jid-malformed).
func items(el *stream.Element) ([]string, error) {
	kids := el.Children()
	if len(kids) > MaxItems {
		return nil, ErrTooMany
	}
	out := make([]string, 0, len(kids))
	seen := map[string]bool{}
	for _, it := range kids {
		if it.Space != NS || it.Local != "item" || !it.Has("jid") {
			return nil, &server.StanzaError{Type: "modify", Condition: "bad-request", Text: "each item needs a jid"}
		}
		j, err := jid.Parse(it.Get("jid"))
		if err != nil {
			return nil, &server.StanzaError{Type: "modify", Condition: "jid-malformed", Text: "not a JID: " + truncate(it.Get("jid"))}
		}
		s := j.String()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (m *mod) block(st *server.Stanza) (*stream.Element, error) {
	user, err := owner(st)
	if err != nil {
		return nil, err
	}
	jids, err := items(st.El.FirstChild())
	if err != nil {
		return nil, err
	}
	if len(jids) == 0 {
		return nil, &server.StanzaError{Type: "modify", Condition: "bad-request", Text: "block needs at least one item"}
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	added, err := m.add(user, jids)
	if errors.Is(err, store.ErrQuota) {
		return nil, ErrFull
	}
	if err != nil {
		return nil, err
	}
	m.push(user, "block", jids)
	for _, j := range added {
		m.cutPresence(user, j)
	}
	return nil, nil
}

func (m *mod) unblock(st *server.Stanza) (*stream.Element, error) {
	user, err := owner(st)
	if err != nil {
		return nil, err
	}
	jids, err := items(st.El.FirstChild())
	if err != nil {
		return nil, err
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	all := len(jids) == 0
	if all {
		jids = m.list(user)
	}
	removed, err := m.remove(user, jids)
	if err != nil {
		return nil, err
	}
	if all {
		m.push(user, "unblock", nil)
	} else {
		m.push(user, "unblock", jids)
	}
	for _, j := range removed {
		m.restorePresence(user, j)
	}
	return nil, nil
}

// push tells the user's resources that asked for the list what changed.
func (m *mod) push(user, op string, jids []string) {
	p := stream.New(NS, op)
	for _, j := range jids {
		p.Add(stream.New(NS, "item", "jid", j))
	}
	iq := stream.New(stream.NSClient, "iq", "type", "set", "id", "block-push-"+strconv.FormatUint(m.pushSeq.Add(1), 10)).Add(p)
	m.srv.SendTo(user, iq, func(x *session.Session) bool {
		on, _ := x.Value(interestedKey{}).(bool)
		return on
	})
}
