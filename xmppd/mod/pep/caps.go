package pep

import (
	"strconv"
	"sync"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	nsCaps     = "http://jabber.org/protocol/caps"
	nsDiscoInf = "http://jabber.org/protocol/disco#info"
	capsPrefix = "pep-caps-"
	// maxCache bounds the remembered feature lists; past it the cache
	// starts again (a client re-asked costs one disco round trip).
	maxCache = 4096
)

// sessCaps is what PEP knows of a session's entity capabilities.
type sessCaps struct {
	mu    sync.Mutex
	ver   string
	feats map[string]bool
}

type sessCapsKey struct{}

// capsState is the per-server cache of feature lists and the disco#info
// requests in flight. The cache is keyed by account and ver, not ver
// alone: we do not recompute the hash (that code is the disco module's),
// so one member's answer must not be trusted for another member's
// client that claims the same ver.
type capsState struct {
	mu      sync.Mutex
	cache   map[string]map[string]bool
	pending map[string]pendingCaps
	seq     uint64
}

type pendingCaps struct {
	sess *session.Session
	ver  string
}

func caps(s *session.Session) *sessCaps {
	if c, ok := s.Value(sessCapsKey{}).(*sessCaps); ok {
		return c
	}
	c := new(sessCaps)
	s.SetValue(sessCapsKey{}, c)
	return c
}

// wants reports whether s asked for node's notifications (+notify).
func (m *mod) wants(s *session.Session, node string) bool {
	c, ok := s.Value(sessCapsKey{}).(*sessCaps)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.feats[node+"+notify"]
}

func (m *mod) registerCaps() {
	cs := &capsState{cache: map[string]map[string]bool{}, pending: map[string]pendingCaps{}}
	// Before the presence module (priority 0), never stopping the stanza.
	m.srv.Hook(server.PresenceOut, 10, func(st *server.Stanza) bool {
		if st.Origin != nil && st.To.Domainpart() == "" && st.Type() == "" {
			m.stampUpdate(st.Origin, st.El)
			m.presence(cs, st)
		}
		return false
	})
	m.srv.Hook(server.IQResponse, 0, func(st *server.Stanza) bool { return m.answer(cs, st) })
	m.srv.OnClosed(func(s *session.Session) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		for id, p := range cs.pending {
			if p.sess == s {
				delete(cs.pending, id)
			}
		}
	})
}

// presence looks at an available broadcast presence: a new caps ver (or
// the first presence) means learning the features, then sending the last
// items the session now asks for.
func (m *mod) presence(cs *capsState, st *server.Stanza) {
	s := st.Origin
	initial := !s.Available()
	var ver, node string
	if c := st.El.Child(nsCaps, "c"); c != nil {
		ver, node = c.Get("ver"), c.Get("node")
	}
	sc := caps(s)
	sc.mu.Lock()
	changed := sc.ver != ver || sc.feats == nil && ver != ""
	sc.ver = ver
	if ver == "" {
		sc.feats = nil
	}
	sc.mu.Unlock()
	if !changed && !initial {
		return
	}
	if ver == "" {
		return // no +notify: nothing to send
	}
	key := s.User + "\x00" + ver
	cs.mu.Lock()
	feats, ok := cs.cache[key]
	var id string
	if !ok {
		cs.seq++
		id = capsPrefix + strconv.FormatUint(cs.seq, 10)
		if len(cs.pending) > maxCache {
			clear(cs.pending)
		}
		cs.pending[id] = pendingCaps{s, ver}
	}
	cs.mu.Unlock()
	if ok {
		m.learnt(s, ver, feats)
		return
	}
	q := stream.New(nsDiscoInf, "query")
	if node != "" {
		q.Set("node", node+"#"+ver)
	}
	// XEP-0115 §6.3 / XEP-0163 §4.3.1: the server asks the client.
	s.Send(stream.New(stream.NSClient, "iq", "type", "get", "id", id,
		"from", s.JID.Bare().String(), "to", s.JID.String()).Add(q))
}

// answer takes a client's answer to our disco#info.
func (m *mod) answer(cs *capsState, st *server.Stanza) bool {
	id := st.El.Get("id")
	if len(id) <= len(capsPrefix) || id[:len(capsPrefix)] != capsPrefix {
		return false
	}
	cs.mu.Lock()
	p, ok := cs.pending[id]
	if ok && p.sess == st.Origin {
		delete(cs.pending, id)
	}
	cs.mu.Unlock()
	if !ok || p.sess != st.Origin {
		return true
	}
	feats := discoFeatures(st)
	if st.Type() == "result" {
		cs.mu.Lock()
		if len(cs.cache) >= maxCache {
			clear(cs.cache)
		}
		cs.cache[p.sess.User+"\x00"+p.ver] = feats
		cs.mu.Unlock()
	}
	m.learnt(p.sess, p.ver, feats)
	return true
}

// learnt records s's features for ver (if that is still its ver) and
// sends the last items.
func (m *mod) learnt(s *session.Session, ver string, feats map[string]bool) {
	sc := caps(s)
	sc.mu.Lock()
	if sc.ver != ver {
		sc.mu.Unlock()
		return
	}
	sc.feats = feats
	sc.mu.Unlock()
	m.deliverLast(s)
}

// discoFeatures is the features of a disco#info answer (none for an
// error), a client's or a remote resource's (remote.go).
func discoFeatures(st *server.Stanza) map[string]bool {
	feats := map[string]bool{}
	if st.Type() != "result" {
		return feats
	}
	if q := st.El.Child(nsDiscoInf, "query"); q != nil {
		for _, f := range q.Children() {
			if f.Space == nsDiscoInf && f.Local == "feature" {
				feats[f.Get("var")] = true
			}
		}
	}
	return feats
}
