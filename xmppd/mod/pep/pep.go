// Package pep is XEP-0163 Personal Eventing Protocol: every account is a
// pubsub service with the XEP-0060 subset PEP clients use (auto-create on
// publish, publish-options as preconditions, items by id and latest-N,
// retract, purge, delete, node configuration), notifications to the
// owner's resources and to contacts that asked with +notify in their
// entity capabilities (XEP-0115, caps.go), and the last item sent when a
// contact comes online or its capabilities change. It is what OMEMO
// device lists and bundles, avatars (XEP-0084), nicknames (XEP-0172),
// bookmarks (XEP-0402) and vCard4 (XEP-0292, vcard4.go) are stored in.
//
// Everything an account publishes is in bbolt (bucket "pep") and charged
// to its storage budget (kind "pep") in the transaction that writes it,
// committed before the iq result is sent.
//
// Last items also go out when the owner grants a contact a presence
// subscription (server.SubscriptionGranted). The roster access model
// admits the contacts in the owner's pubsub#roster_groups_allowed
// (server.Contacts.Groups). The server offers bookmarks of its own
// rooms (server.OfferBookmark: the club's default room) once per
// account, as a publish of the account's.
//
// Contacts on other servers get notifications and last items by the
// caps of the presence they sent the member (remote.go).
//
// What it does not do (yet): explicit subscriptions (subscribe, options)
// answer feature-not-implemented, as PEP's are implicit.
package pep

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Namespaces.
const (
	NS           = "http://jabber.org/protocol/pubsub"
	NSOwner      = NS + "#owner"
	NSEvent      = NS + "#event"
	nsErrors     = NS + "#errors"
	nsNodeConfig = NS + "#node_config"
	nsPubOptions = NS + "#publish-options"
	nsData       = "jabber:x:data"
)

// Per-account limits. A member's devices keep a handful of nodes (OMEMO
// device list and a bundle per device in two generations, avatar data and
// metadata, nickname, bookmarks, a few app nodes): 100 nodes is ample and
// stops a client that creates a node per message. 256 items per node is
// the "max" of pubsub#max_items (bookmarks: one item per room). An item
// is at most 128 KiB, as a vCard (room for an XEP-0084 avatar, which
// clients scale to a few tens of KiB); it must stay below the c2s stanza
// limit (stream.PostAuthLimits, 256 KiB), or the check could never
// answer: a 10 MB avatar ends the stream with policy-violation before
// PEP sees it. 8 MiB in all per account.
const (
	MaxNodes    = 100
	MaxItems    = 256
	MaxItemSize = 128 << 10
	MaxBytes    = 8 << 20
	// MaxIDLen bounds node names and item ids.
	MaxIDLen = 1024
)

// Kind is what PEP data is charged as in the account's budget.
const Kind = "pep"

var (
	errPrecondition = &server.StanzaError{Type: "cancel", Condition: "conflict",
		Text: "the node exists with another configuration", Extra: stream.New(nsErrors, "precondition-not-met")}
	errConflict     = &server.StanzaError{Type: "cancel", Condition: "conflict", Text: "node exists"}
	errTooManyNodes = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
		Text: "too many PEP nodes: delete some (limit " + strconv.Itoa(MaxNodes) + ")"}
	errFull = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
		Text: "PEP storage is full: delete or purge some nodes"}
	errTooBig = &server.StanzaError{Type: "modify", Condition: "not-acceptable",
		Text: "item too large (limit " + strconv.Itoa(MaxItemSize) + " bytes)", Extra: stream.New(nsErrors, "payload-too-big")}
	errNodeRequired = &server.StanzaError{Type: "modify", Condition: "bad-request", Extra: stream.New(nsErrors, "nodeid-required")}
)

func appErr(typ, cond, app string) *server.StanzaError {
	return &server.StanzaError{Type: typ, Condition: cond, Extra: stream.New(nsErrors, app)}
}

// features advertised on accounts (XEP-0163 §8; XEP-0060 §10).
var features = []string{
	NS, "http://jabber.org/protocol/pubsub#publish", "http://jabber.org/protocol/pubsub#auto-create",
	"http://jabber.org/protocol/pubsub#publish-options", "http://jabber.org/protocol/pubsub#persistent-items",
	"http://jabber.org/protocol/pubsub#retrieve-items", "http://jabber.org/protocol/pubsub#retract-items",
	"http://jabber.org/protocol/pubsub#purge-nodes", "http://jabber.org/protocol/pubsub#delete-nodes",
	"http://jabber.org/protocol/pubsub#create-nodes", "http://jabber.org/protocol/pubsub#config-node",
	// config-node-max: pubsub#max_items accepts "max" (XEP-0060 §16.4.4).
	// Converse asks for "max" only where this is advertised and otherwise
	// for 9999, which is over MaxItems: without it it could not save bookmarks.
	"http://jabber.org/protocol/pubsub#config-node-max",
	"http://jabber.org/protocol/pubsub#access-open", "http://jabber.org/protocol/pubsub#access-presence",
	"http://jabber.org/protocol/pubsub#access-roster", "http://jabber.org/protocol/pubsub#access-whitelist",
	"http://jabber.org/protocol/pubsub#last-published", "http://jabber.org/protocol/pubsub#item-ids",
	"http://jabber.org/protocol/pubsub#auto-subscribe", "http://jabber.org/protocol/pubsub#filtered-notifications",
}

type mod struct {
	srv *server.Server
	db  *db
	// remote: contacts' resources on other servers and their caps
	// (remote.go).
	remote *remoteState
}

type modKey struct{}

// Register adds PEP to srv.
func Register(srv *server.Server) {
	m := server.State(srv, modKey{}, func() *mod { return &mod{srv: srv, db: &db{srv.Store}} })
	srv.AddAccountIdentity(server.Identity{Category: "pubsub", Type: "pep"})
	for _, f := range features {
		srv.AddFeature(server.ToAccount, f)
	}
	srv.HandleIQ(server.ToAccount, "set", NS, "pubsub", m.set)
	srv.HandleIQ(server.ToAccount, "get", NS, "pubsub", m.get)
	srv.HandleIQ(server.ToAccount, "set", NSOwner, "pubsub", m.ownerSet)
	srv.HandleIQ(server.ToAccount, "get", NSOwner, "pubsub", m.ownerGet)
	m.registerCaps()
	m.registerRemote()
	m.registerAvatar()
	m.registerBookmarks()
	m.registerVCard4()
	server.SubscriptionGranted.On(srv, m.granted)
	srv.AddAccountItems(m.discoItems)
	srv.OnAccountDeleted(func(user string) {
		if err := m.db.deleteUser(user); err != nil {
			srv.Log.Error("pep: delete account", "user", user, "err", err)
		}
	})
}

// owner reports whether st comes from the account it is addressed to.
func owner(st *server.Stanza) bool {
	return st.Origin != nil && st.From.Localpart() == st.To.Localpart()
}

// storeErr maps storage errors to what the client is told.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrQuota):
		return errFull
	case errors.Is(err, errNoNode):
		return server.ErrItemNotFound
	}
	return err
}

// set handles publish, create and retract.
func (m *mod) set(st *server.Stanza) (*stream.Element, error) {
	ps := st.El.FirstChild()
	var pub, opts, create, configure *stream.Element
	for _, c := range ps.Children() {
		switch {
		case c.Space == NS && c.Local == "publish" && pub == nil:
			pub = c
		case c.Space == NS && c.Local == "publish-options" && opts == nil:
			opts = c
		case c.Space == NS && c.Local == "create" && create == nil:
			create = c
		case c.Space == NS && c.Local == "configure" && configure == nil:
			configure = c
		case c.Space == NS && c.Local == "retract" && len(ps.Children()) == 1:
			return m.retract(st, c)
		case c.Space == NS && (c.Local == "subscribe" || c.Local == "unsubscribe" || c.Local == "options"):
			// PEP subscriptions are implicit (presence and +notify).
			return nil, appErr("cancel", "feature-not-implemented", "subscribe")
		default:
			return nil, server.ErrBadRequest
		}
	}
	if !owner(st) {
		return nil, server.ErrForbidden
	}
	switch {
	case pub != nil && create == nil && configure == nil:
		return m.publish(st, pub, opts)
	case create != nil && pub == nil && opts == nil:
		return m.create(st, create, configure)
	}
	return nil, server.ErrBadRequest
}

func formOf(el *stream.Element) (map[string][]string, error) {
	if el == nil {
		return nil, nil
	}
	x := el.Child(nsData, "x")
	if x == nil && len(el.Children()) > 0 {
		return nil, server.ErrBadRequest
	}
	f, ok := formFields(x)
	if !ok {
		return nil, server.ErrBadRequest
	}
	return f, nil
}

func nodeOf(el *stream.Element) (string, error) {
	n := el.Get("node")
	if n == "" {
		return "", errNodeRequired
	}
	if len(n) > MaxIDLen {
		return "", server.ErrNotAcceptable
	}
	return n, nil
}

func (m *mod) publish(st *server.Stanza, pub, opts *stream.Element) (*stream.Element, error) {
	node, err := nodeOf(pub)
	if err != nil {
		return nil, err
	}
	fields, err := formOf(opts)
	if err != nil {
		return nil, err
	}
	if opts != nil && fields == nil {
		fields = map[string][]string{}
	}
	items := pub.Children()
	// XEP-0060 §7.1.3.5: PEP nodes take one item with one payload.
	if len(items) != 1 || items[0].Space != NS || items[0].Local != "item" {
		return nil, appErr("modify", "bad-request", "item-required")
	}
	item := items[0]
	switch len(item.Children()) {
	case 0:
		return nil, appErr("modify", "bad-request", "payload-required")
	case 1:
	default:
		return nil, appErr("modify", "bad-request", "invalid-payload")
	}
	id := item.Get("id")
	if id == "" {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	if len(id) > MaxIDLen {
		return nil, server.ErrNotAcceptable
	}
	if err := checkPayload(node, item.FirstChild()); err != nil {
		return nil, err
	}
	stored := stream.New(NS, "item", "id", id).Add(item.FirstChild())
	if len(stored.Append(nil, "")) > MaxItemSize {
		return nil, errTooBig
	}
	user := st.To.Localpart()
	cfg, err := m.db.publish(user, node, fields, stored)
	if err != nil {
		return nil, storeErr(err)
	}
	m.notify(user, node, cfg, stream.New(NSEvent, "items", "node", node).Add(eventItem(stored)))
	m.changed(user, node)
	if node == NodeAvatarMeta {
		m.avatarPublished(user, stored.FirstChild())
	}
	return stream.New(NS, "pubsub").Add(stream.New(NS, "publish", "node", node).Add(stream.New(NS, "item", "id", id))), nil
}

// eventItem is item in the pubsub#event namespace.
func eventItem(item *stream.Element) *stream.Element {
	e := stream.New(NSEvent, "item", "id", item.Get("id"))
	if p := item.FirstChild(); p != nil {
		e.Add(p)
	}
	return e
}

func (m *mod) create(st *server.Stanza, create, configure *stream.Element) (*stream.Element, error) {
	node, err := nodeOf(create)
	if err != nil {
		return nil, err // instant nodes have no use in PEP
	}
	fields, err := formOf(configure)
	if err != nil {
		return nil, err
	}
	if err := m.db.create(st.To.Localpart(), node, fields); err != nil {
		return nil, storeErr(err)
	}
	return nil, nil
}

func (m *mod) retract(st *server.Stanza, r *stream.Element) (*stream.Element, error) {
	if !owner(st) {
		return nil, server.ErrForbidden
	}
	node, err := nodeOf(r)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, it := range r.Children() {
		if it.Space != NS || it.Local != "item" || it.Get("id") == "" {
			return nil, appErr("modify", "bad-request", "item-required")
		}
		ids = append(ids, it.Get("id"))
	}
	if len(ids) != 1 {
		return nil, appErr("modify", "bad-request", "item-required")
	}
	user := st.To.Localpart()
	cfg, err := m.db.retract(user, node, ids[0])
	if err != nil {
		if errors.Is(err, errNoItem) {
			return nil, server.ErrItemNotFound
		}
		return nil, storeErr(err)
	}
	m.changed(user, node)
	if n := r.Get("notify"); (n == "1" || n == "true") && cfg.NotifyRt {
		m.notify(user, node, cfg, stream.New(NSEvent, "items", "node", node).Add(stream.New(NSEvent, "retract", "id", ids[0])))
	}
	return nil, nil
}

var errNoItem = errors.New("pep: no such item")

func (m *mod) get(st *server.Stanza) (*stream.Element, error) {
	ps := st.El.FirstChild()
	if len(ps.Children()) != 1 {
		return nil, server.ErrBadRequest
	}
	c := ps.FirstChild()
	if c.Space != NS || c.Local != "items" {
		return nil, server.ErrFeatureNotImpl
	}
	node, err := nodeOf(c)
	if err != nil {
		return nil, err
	}
	max := 0
	if v := c.Get("max_items"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, server.ErrBadRequest
		}
		max = n
	}
	var ids []string
	for _, it := range c.Children() {
		if it.Space == NS && it.Local == "item" && it.Get("id") != "" {
			ids = append(ids, it.Get("id"))
		}
	}
	user := st.To.Localpart()
	mt, items, err := m.db.node(user, node, ids, max)
	if err != nil {
		return nil, err
	}
	if mt == nil {
		return nil, server.ErrItemNotFound
	}
	if !owner(st) && !m.allowed(user, st.From.Bare().String(), mt.C) {
		return nil, accessErr(mt.C)
	}
	out := stream.New(NS, "items", "node", node)
	for _, it := range items {
		out.Add(it)
	}
	return stream.New(NS, "pubsub").Add(out), nil
}

// accessErr is XEP-0060 §6.5.9's answer to someone the model keeps out.
func accessErr(c config) error {
	switch c.Access {
	case AccessPresence:
		return appErr("auth", "not-authorized", "presence-subscription-required")
	case AccessRoster:
		return appErr("auth", "not-authorized", "not-in-roster-group")
	}
	return appErr("cancel", "not-allowed", "closed-node")
}

func (m *mod) ownerGet(st *server.Stanza) (*stream.Element, error) {
	if !owner(st) {
		return nil, server.ErrForbidden
	}
	ps := st.El.FirstChild()
	if len(ps.Children()) != 1 {
		return nil, server.ErrBadRequest
	}
	c := ps.FirstChild()
	switch {
	case c.Space == NSOwner && c.Local == "configure":
		node, err := nodeOf(c)
		if err != nil {
			return nil, err
		}
		mt, _, err := m.db.node(st.To.Localpart(), node, []string{"\x00none"}, 0)
		if err != nil {
			return nil, err
		}
		if mt == nil {
			return nil, server.ErrItemNotFound
		}
		return stream.New(NSOwner, "pubsub").Add(stream.New(NSOwner, "configure", "node", node).Add(mt.C.form())), nil
	case c.Space == NSOwner && c.Local == "default":
		return stream.New(NSOwner, "pubsub").Add(stream.New(NSOwner, "default").Add(defaultConfig().form())), nil
	}
	return nil, server.ErrFeatureNotImpl
}

func (m *mod) ownerSet(st *server.Stanza) (*stream.Element, error) {
	if !owner(st) {
		return nil, server.ErrForbidden
	}
	ps := st.El.FirstChild()
	if len(ps.Children()) != 1 {
		return nil, server.ErrBadRequest
	}
	c := ps.FirstChild()
	if c.Space != NSOwner {
		return nil, server.ErrBadRequest
	}
	node, err := nodeOf(c)
	if err != nil {
		return nil, err
	}
	user := st.To.Localpart()
	switch c.Local {
	case "configure":
		x := c.Child(nsData, "x")
		if x == nil {
			return nil, server.ErrBadRequest
		}
		if x.Get("type") == "cancel" {
			return nil, nil
		}
		fields, ok := formFields(x)
		if !ok {
			return nil, server.ErrBadRequest
		}
		_, err := m.db.update(user, node, func(tx *bolt.Tx, b *bolt.Bucket, mt *meta) error {
			nc, err := mt.C.apply(fields)
			if err != nil {
				return err
			}
			mt.C = nc
			return trim(tx, b, user, node, mt, nc.keep())
		})
		return nil, storeErr(err)
	case "purge":
		cfg, err := m.db.update(user, node, func(tx *bolt.Tx, b *bolt.Bucket, mt *meta) error {
			return trim(tx, b, user, node, mt, 0)
		})
		if err != nil {
			return nil, storeErr(err)
		}
		m.changed(user, node)
		m.notify(user, node, cfg, stream.New(NSEvent, "purge", "node", node))
		return nil, nil
	case "delete":
		cfg, err := m.db.deleteNode(user, node)
		if err != nil {
			return nil, storeErr(err)
		}
		m.changed(user, node)
		if cfg.NotifyDl {
			m.notify(user, node, cfg, stream.New(NSEvent, "delete", "node", node))
		}
		return nil, nil
	}
	return nil, server.ErrFeatureNotImpl
}

// changed runs after a client changed node's items: the copies other
// protocols keep follow (XEP-0402 #compat; the vcard-temp card, vcard4.go).
func (m *mod) changed(user, node string) {
	switch node {
	case NodeBookmarks:
		m.toPrivate(user)
	case NodeVCard4:
		server.VCard4Changed.Fire(m.srv, user)
	}
}

// discoItems lists owner's nodes that viewer may read (XEP-0060 §5.2).
func (m *mod) discoItems(owner string, viewer jid.JID) []server.AccountItem {
	nodes, err := m.db.nodes(owner)
	if err != nil {
		m.srv.Log.Error("pep: disco items", "owner", owner, "err", err)
		return nil
	}
	own := owner + "@" + m.srv.Domain
	var out []server.AccountItem
	for name, mt := range nodes {
		if m.allowed(owner, viewer.Bare().String(), mt.C) {
			out = append(out, server.AccountItem{JID: own, Node: name, Name: mt.C.Title})
		}
	}
	slices.SortFunc(out, func(a, b server.AccountItem) int { return strings.Compare(a.Node, b.Node) })
	return out
}
