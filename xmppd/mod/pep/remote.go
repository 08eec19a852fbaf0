package pep

import (
	"strconv"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// PEP to contacts on other servers (issue 14: "PEP notifications to remote
// contacts"). A local session says what it wants by its caps, which PEP
// asks it for (caps.go); a contact on another server says it the same way
// in the presence it sends a member. So, as Prosody's mod_pep does, the
// server remembers, per member, the remote resources whose available
// presence reached the member and their caps ver, asks each new (contact,
// ver) for its features with a disco#info from the member's bare JID, and
// then sends those resources the member's notifications over federation
// (and, once their features are known, the last item of each node they
// want, XEP-0163 §4.3.2). Unavailable presence forgets a resource.
//
// Only resources that sent the member presence are known: a contact
// subscribed to the member without the member subscribed back gets its
// events only through its own server's probes — the same as in Prosody.
//
// Memory is bounded: remotePerOwner resources per member, remoteTotal in
// all, maxCache feature lists; past a bound new resources are not
// remembered (their events are lost, like a headline to an offline app).
const (
	remotePerOwner = 200
	remoteTotal    = 20000
	remotePrefix   = "pep-rcaps-"
)

type remoteState struct {
	mu sync.Mutex
	// res: member → remote full JID → caps ver ("" none).
	res map[string]map[string]string
	n   int
	// feats: remote bare JID + "\x00" + ver → features. Keyed by the
	// contact too: the hash is not recomputed here, so one contact's
	// answer is not trusted for another's claim of the same ver.
	feats map[string]map[string]bool
	// asked: disco#info id → what was asked.
	asked map[string]remoteAsk
	seq   uint64
}

type remoteAsk struct{ owner, full, key string }

func (m *mod) registerRemote() {
	m.remote = &remoteState{res: map[string]map[string]string{}, feats: map[string]map[string]bool{}, asked: map[string]remoteAsk{}}
	// After blocking (1000), before the presence module (0); never stops
	// the stanza.
	m.srv.Hook(server.PresenceIn, 20, func(st *server.Stanza) bool {
		m.remotePresence(st)
		return false
	})
	m.srv.Hook(server.IQResponse, 0, m.remoteAnswer)
}

// remotePresence notes an available presence from a remote resource to a
// member (its caps), or forgets it when unavailable.
func (m *mod) remotePresence(st *server.Stanza) {
	from := st.From
	owner := st.To.Localpart()
	// Our own services (groups., upload.) are not remote contacts:
	// IsLocal covers the main domain only.
	if owner == "" || from.Resourcepart() == "" || m.srv.IsLocal(from) || m.srv.IsService(from) {
		return
	}
	typ := st.Type()
	if typ != "" && typ != "unavailable" {
		return
	}
	if st.El.Child("http://jabber.org/protocol/muc#user", "x") != nil {
		// A room occupant's presence (XEP-0045 §7.2.3), not a contact's:
		// remembering every occupant of every room a member is in cost
		// ~3 KiB of RssAnon per idle occupant in rooms of 50 (issue 12,
		// hearth-bench idle occupants; TestRoomPresenceNotRemote).
		return
	}
	r := m.remote
	full := from.String()
	r.mu.Lock()
	if typ == "unavailable" {
		if rs := r.res[owner]; rs != nil {
			if _, ok := rs[full]; ok {
				delete(rs, full)
				r.n--
				if len(rs) == 0 {
					delete(r.res, owner)
				}
			}
		}
		r.mu.Unlock()
		return
	}
	var ver string
	if c := st.El.Child(nsCaps, "c"); c != nil {
		ver = c.Get("ver")
	}
	rs := r.res[owner]
	old, known := rs[full]
	if !known && (len(rs) >= remotePerOwner || r.n >= remoteTotal) {
		r.mu.Unlock()
		return
	}
	if rs == nil {
		rs = map[string]string{}
		r.res[owner] = rs
	}
	if !known {
		r.n++
	}
	rs[full] = ver
	if ver == "" || known && old == ver {
		r.mu.Unlock()
		return
	}
	key := from.Bare().String() + "\x00" + ver
	if _, ok := r.feats[key]; ok {
		r.mu.Unlock()
		m.sendLastRemote(owner, from)
		return
	}
	r.seq++
	id := remotePrefix + strconv.FormatUint(r.seq, 10)
	if len(r.asked) >= maxCache {
		clear(r.asked)
	}
	r.asked[id] = remoteAsk{owner: owner, full: full, key: key}
	r.mu.Unlock()
	q := stream.New(nsDiscoInf, "query")
	if c := st.El.Child(nsCaps, "c"); c != nil && c.Get("node") != "" {
		q.Set("node", c.Get("node")+"#"+ver)
	}
	m.srv.Route(stream.New(stream.NSClient, "iq", "type", "get", "id", id,
		"from", owner+"@"+m.srv.Domain, "to", full).Add(q))
}

// remoteAnswer takes a remote resource's answer to our disco#info.
func (m *mod) remoteAnswer(st *server.Stanza) bool {
	id := st.El.Get("id")
	if len(id) <= len(remotePrefix) || id[:len(remotePrefix)] != remotePrefix {
		return false
	}
	r := m.remote
	r.mu.Lock()
	a, ok := r.asked[id]
	if ok && st.From.String() == a.full && st.To.Localpart() == a.owner {
		delete(r.asked, id)
	} else {
		ok = false
	}
	r.mu.Unlock()
	if !ok {
		return true
	}
	feats := discoFeatures(st) // caps.go
	r.mu.Lock()
	if len(r.feats) >= maxCache {
		clear(r.feats)
	}
	r.feats[a.key] = feats
	r.mu.Unlock()
	m.sendLastRemote(a.owner, st.From)
	return true
}

// remoteWants reports whether the remote resource full (of contact bare)
// asked for node's notifications, as far as its caps are known.
func (r *remoteState) wants(bare, ver, node string) bool {
	return r.feats[bare+"\x00"+ver][node+"+notify"]
}

// remoteAudience is owner's remote resources that want node and may read
// it (c's access model, blocking either way).
func (m *mod) remoteAudience(owner, node string, c config) []jid.JID {
	if c.Access == AccessWhitelist {
		return nil
	}
	r := m.remote
	r.mu.Lock()
	var cand []jid.JID
	for full, ver := range r.res[owner] {
		j, err := jid.Parse(full)
		if err == nil && ver != "" && r.wants(j.Bare().String(), ver, node) {
			cand = append(cand, j)
		}
	}
	r.mu.Unlock()
	out := cand[:0]
	for _, j := range cand {
		if m.allowed(owner, j.Bare().String(), c) && !m.remoteBlocked(owner, j) {
			out = append(out, j)
		}
	}
	return out
}

// remoteBlocked: the member blocked the remote contact (XEP-0191).
func (m *mod) remoteBlocked(owner string, j jid.JID) bool {
	return m.srv.Blocks(owner, j)
}

// notifyRemote sends payload to owner's remote audience for node.
func (m *mod) notifyRemote(owner, node string, c config, payload *stream.Element) {
	for _, j := range m.remoteAudience(owner, node, c) {
		m.srv.Route(m.remoteEvent(owner, j, payload.Copy()))
	}
}

func (m *mod) remoteEvent(owner string, to jid.JID, payload *stream.Element) *stream.Element {
	msg := stream.New(stream.NSClient, "message", "type", "headline",
		"from", owner+"@"+m.srv.Domain, "to", to.String())
	return msg.Add(stream.New(NSEvent, "event").Add(payload))
}

// sendLastRemote sends the remote resource full the last item of each of
// owner's nodes it wants and may read (send_last_published_item
// on_sub_and_presence: it just sent presence).
func (m *mod) sendLastRemote(owner string, full jid.JID) {
	r := m.remote
	r.mu.Lock()
	ver := r.res[owner][full.String()]
	r.mu.Unlock()
	if ver == "" || m.remoteBlocked(owner, full) {
		return
	}
	nodes, err := m.db.nodes(owner)
	if err != nil {
		m.srv.Log.Error("pep: last items", "owner", owner, "err", err)
		return
	}
	bare := full.Bare().String()
	for node, mt := range nodes {
		r.mu.Lock()
		want := r.wants(bare, ver, node)
		r.mu.Unlock()
		if mt.C.SendLast != "on_sub_and_presence" || len(mt.Items) == 0 || !want || !m.allowed(owner, bare, mt.C) {
			continue
		}
		_, items, err := m.db.node(owner, node, nil, 1)
		if err != nil || len(items) == 0 {
			continue
		}
		m.srv.Route(m.remoteEvent(owner, full, stream.New(NSEvent, "items", "node", node).Add(eventItem(items[0]))))
	}
}
