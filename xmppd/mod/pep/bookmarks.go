package pep

import (
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// XEP-0402 bookmarks with urn:xmpp:bookmarks:1#compat: the server keeps
// the XEP-0048 copy in private storage (XEP-0049, reached through
// server.PrivateStorage) in step with the PEP node, both ways, so a
// client that still reads storage:bookmarks sees the rooms a Bookmarks 2
// client added, and the other way round.
const (
	NodeBookmarks = "urn:xmpp:bookmarks:1"
	nsLegacy      = "storage:bookmarks"
)

func (m *mod) registerBookmarks() {
	m.srv.AddFeature(server.ToAccount, NodeBookmarks+"#compat")
	server.PrivateStored.On(m.srv, func(p server.PrivateData) {
		if p.El.Space == nsLegacy && p.El.Local == "storage" {
			m.fromPrivate(p.User, p.El)
		}
	})
	server.OfferBookmark.On(m.srv, m.offer)
}

// offer adds the room the server suggests to the account's bookmarks,
// once (server.OfferBookmark): through the same storage, limits and
// notifications as a client's publish, and into the XEP-0048 copy. The
// offer is recorded with the publish, so a bookmark the member removes
// stays removed, and one the member already has stays as the member
// made it.
func (m *mod) offer(bm server.Bookmark) {
	j, err := jid.Parse(bm.Room)
	if err != nil || j.Localpart() == "" || bm.User == "" {
		m.srv.Log.Warn("pep: bookmark offer for a bad room", "user", bm.User, "room", bm.Room)
		return
	}
	id := j.Bare().String()
	// Looked up first without writing: the xmppd package offers the
	// default room to every account at each start.
	if done, err := m.db.offered(bm.User, NodeBookmarks, id); err != nil || done {
		return
	}
	c := stream.New(NodeBookmarks, "conference")
	if bm.Name != "" {
		c.Set("name", bm.Name)
	}
	if bm.Autojoin {
		c.Set("autojoin", "true")
	}
	if bm.Nick != "" {
		c.Add(stream.New(NodeBookmarks, "nick").AddText(bm.Nick))
	}
	item := stream.New(NS, "item", "id", id).Add(c)
	cfg, published, err := m.db.offer(bm.User, NodeBookmarks, bookmarkFields(), item)
	if err != nil {
		m.srv.Log.Warn("pep: bookmark offer", "user", bm.User, "room", id, "err", storeErr(err))
		return
	}
	if published {
		m.notify(bm.User, NodeBookmarks, cfg, stream.New(NSEvent, "items", "node", NodeBookmarks).Add(eventItem(item)))
		m.changed(bm.User, NodeBookmarks)
	}
}

// bookmarkFields is XEP-0402 §3's node configuration, used when the
// server creates the node from private storage.
func bookmarkFields() map[string][]string {
	return map[string][]string{
		"pubsub#persist_items":            {"true"},
		"pubsub#max_items":                {"max"},
		"pubsub#send_last_published_item": {"never"},
		"pubsub#access_model":             {"whitelist"},
	}
}

func isTrue(s string) bool { return s == "1" || s == "true" }

// toPrivate rewrites the XEP-0048 copy from the PEP node. What XEP-0048
// has and XEP-0402 not (<url/> bookmarks, other children) is kept.
func (m *mod) toPrivate(user string) {
	ps := m.srv.PrivateStorage()
	if ps == nil {
		return
	}
	_, items, err := m.db.node(user, NodeBookmarks, nil, 0)
	if err != nil {
		m.srv.Log.Error("pep: bookmarks to private storage", "user", user, "err", err)
		return
	}
	out := stream.New(nsLegacy, "storage")
	if old, err := ps.Get(user, nsLegacy, "storage"); err == nil && old != nil {
		for _, c := range old.Children() {
			if !(c.Space == nsLegacy && c.Local == "conference") {
				out.Add(c)
			}
		}
	}
	for _, it := range items {
		c := it.FirstChild()
		if c == nil || c.Space != NodeBookmarks || c.Local != "conference" {
			continue
		}
		lc := stream.New(nsLegacy, "conference", "jid", it.Get("id"))
		lc.Set("name", c.Get("name"))
		if isTrue(c.Get("autojoin")) {
			lc.Set("autojoin", "true")
		}
		for _, k := range []string{"nick", "password"} {
			if v := c.ChildText(NodeBookmarks, k); v != "" {
				lc.Add(stream.New(nsLegacy, k).AddText(v))
			}
		}
		out.Add(lc)
	}
	if err := ps.Put(user, out); err != nil {
		m.srv.Log.Warn("pep: bookmarks to private storage", "user", user, "err", err)
	}
}

// fromPrivate brings the PEP node in line with a storage:bookmarks a
// client stored: new and changed rooms are published, rooms no longer
// there retracted, each notified as a client's own publish would be.
func (m *mod) fromPrivate(user string, st *stream.Element) {
	want := map[string]*stream.Element{}
	var order []string
	for _, c := range st.Children() {
		if c.Space != nsLegacy || c.Local != "conference" {
			continue
		}
		j, err := jid.Parse(c.Get("jid"))
		if err != nil || j.Localpart() == "" {
			continue
		}
		id := j.Bare().String()
		nc := stream.New(NodeBookmarks, "conference")
		nc.Set("name", c.Get("name"))
		if isTrue(c.Get("autojoin")) {
			nc.Set("autojoin", "true")
		}
		for _, k := range []string{"nick", "password"} {
			if v := c.ChildText(nsLegacy, k); v != "" {
				nc.Add(stream.New(NodeBookmarks, k).AddText(v))
			}
		}
		if _, dup := want[id]; !dup {
			order = append(order, id)
		}
		want[id] = nc
	}
	if err := m.db.create(user, NodeBookmarks, bookmarkFields()); err != nil && !errors.Is(err, errConflict) {
		m.srv.Log.Warn("pep: bookmarks from private storage", "user", user, "err", err)
		return
	}
	_, items, err := m.db.node(user, NodeBookmarks, nil, 0)
	if err != nil {
		m.srv.Log.Error("pep: bookmarks from private storage", "user", user, "err", err)
		return
	}
	have := map[string]string{}
	for _, it := range items {
		if p := it.FirstChild(); p != nil {
			have[it.Get("id")] = p.String()
		}
	}
	for _, id := range order {
		if have[id] == want[id].String() {
			continue
		}
		if !m.publishOwn(user, NodeBookmarks, stream.New(NS, "item", "id", id).Add(want[id])) {
			return
		}
	}
	for id := range have {
		if want[id] != nil {
			continue
		}
		cfg, err := m.db.retract(user, NodeBookmarks, id)
		if err != nil {
			continue
		}
		if cfg.NotifyRt {
			m.notify(user, NodeBookmarks, cfg, stream.New(NSEvent, "items", "node", NodeBookmarks).Add(stream.New(NSEvent, "retract", "id", id)))
		}
	}
}
