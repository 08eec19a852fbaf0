package roster

import (
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	nsVerFeature = "urn:xmpp:features:rosterver"
	// maxText bounds a name or group name (RFC 6121 §2.3.3 lets the
	// server choose; 1 KiB is far above what any client shows).
	maxText   = 1024
	maxGroups = 64
)

// Register plugs the roster protocol into srv.
func Register(srv *server.Server) {
	srv.AddStreamFeature(func(*session.Session) *stream.Element {
		return stream.New(nsVerFeature, "ver")
	})
	srv.HandleIQ(server.ToAccount, "get", NS, "query", func(st *server.Stanza) (*stream.Element, error) {
		return get(srv, st)
	})
	srv.HandleIQ(server.ToAccount, "set", NS, "query", func(st *server.Stanza) (*stream.Element, error) {
		return set(srv, st)
	})
	srv.OnAccountDeleted(func(user string) {
		if err := deleteUser(srv, user); err != nil {
			srv.Log.Error("roster: delete account data", "user", user, "err", err)
		}
	})
	if err := migrate(srv.Store); err != nil {
		srv.Log.Error("roster: building the index", "err", err)
	}
	srv.SetContacts(contactsImpl{srv})
	// An invite is a friendship offer: the member and the inviter see each
	// other from the first login on (DESIGN.md, "An invite").
	server.AccountRegistered.On(srv, func(r server.Registration) {
		if r.Inviter == "" || r.Inviter == r.User || !srv.AccountExists(r.Inviter) {
			return
		}
		if err := Befriend(srv, r.User, r.Inviter); err != nil {
			srv.Log.Error("invite: roster pre-subscription", "user", r.User, "inviter", r.Inviter, "err", err)
		}
	})
}

// own reports whether the iq is the user's own (RFC 6121 §2.1.5: only the
// user may read or change a roster).
func own(st *server.Stanza) bool {
	return st.Origin != nil && st.To.Localpart() == st.From.Localpart() &&
		strings.EqualFold(st.To.Domainpart(), st.From.Domainpart())
}

func get(srv *server.Server, st *server.Stanza) (*stream.Element, error) {
	if !own(st) {
		return nil, server.ErrForbidden
	}
	q := st.El.FirstChild()
	if len(q.Children()) > 0 {
		return nil, server.ErrBadRequest
	}
	user := st.From.Localpart()
	// From now on the resource receives pushes and its contacts' presence
	// (RFC 6121 §2.1.6 "interested resource").
	st.Origin.SetInterested()
	// One iq result is one stanza, and stream management keeps it whole
	// until the client acknowledges it, so the result cannot be streamed
	// in pieces. Instead its size is bounded where it is made: each record
	// is charged its size in a result (store.go, MaxBytes), so a roster
	// within budget always fits the session's write queue (a probe found
	// a 66 MB roster taking RSS from 90 to 390 MB per get and closing the
	// session without a stream error). A roster stored before the budget
	// existed can be bigger: it is refused here, before anything is
	// decoded, and the member can still remove items.
	ver, size, err := listedSize(srv.Store, user)
	if err != nil {
		return nil, err
	}
	out := stream.New(NS, "query")
	if q.Has("ver") {
		cur := strconv.FormatUint(ver, 10)
		if q.Get("ver") == cur {
			// §2.6.3: the client's copy is current; changes made later
			// arrive as pushes.
			return nil, nil
		}
		out.Set("ver", cur)
	}
	if size > maxResult {
		return nil, &server.StanzaError{Type: "wait", Condition: "resource-constraint",
			Text: "this roster is too big to send; remove some contacts"}
	}
	items, _, err := Items(srv.Store, user)
	if err != nil {
		return nil, err
	}
	for i := range items {
		out.Add(items[i].Element())
	}
	return out, nil
}

func set(srv *server.Server, st *server.Stanza) (*stream.Element, error) {
	if !own(st) {
		return nil, server.ErrForbidden
	}
	q := st.El.FirstChild()
	kids := q.Children()
	if len(kids) != 1 || kids[0].Local != "item" || kids[0].Space != NS {
		return nil, &server.StanzaError{Type: "modify", Condition: "bad-request", Text: "a roster set carries exactly one item"}
	}
	item := kids[0]
	c, err := jid.Parse(item.Get("jid"))
	if err != nil || item.Get("jid") == "" {
		return nil, server.ErrJIDMalformed
	}
	if c.Resourcepart() != "" {
		return nil, &server.StanzaError{Type: "modify", Condition: "bad-request", Text: "roster items are bare JIDs"}
	}
	contact := c.String()
	user := st.From.Localpart()
	if c.Equal(st.From.Bare()) {
		return nil, &server.StanzaError{Type: "cancel", Condition: "not-allowed", Text: "you cannot add yourself"}
	}
	if item.Get("subscription") == "remove" {
		return nil, remove(srv, st.From.Bare(), user, contact)
	}
	// §2.3.3: subscription (other than remove), ask and approved are the
	// server's to set; a client's values are ignored.
	name := item.Get("name")
	if len(name) > maxText {
		return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "name too long"}
	}
	var groups []string
	seen := map[string]bool{}
	for _, g := range item.Children() {
		if g.Local != "group" || g.Space != NS {
			continue
		}
		t := g.Text()
		switch {
		case t == "":
			return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "empty group name"}
		case len(t) > maxText:
			return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "group name too long"}
		case seen[t]:
			return nil, &server.StanzaError{Type: "modify", Condition: "bad-request", Text: "duplicate group"}
		}
		seen[t] = true
		groups = append(groups, t)
	}
	if len(groups) > maxGroups {
		return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "too many groups"}
	}
	_, err = Update(srv, user, contact, func(it *Item) error {
		it.Listed, it.Name, it.Groups = true, name, groups
		return nil
	})
	return nil, err
}

// remove deletes an item and, as RFC 6121 §2.5.2 requires, cancels the
// subscriptions in both directions.
func remove(srv *server.Server, from jid.JID, user, contact string) error {
	cur, ok, err := Get(srv.Store, user, contact)
	if err != nil {
		return err
	}
	if !ok || !cur.Listed {
		return server.ErrItemNotFound
	}
	ch, err := Update(srv, user, contact, func(it *Item) error {
		*it = Item{}
		return nil
	})
	if err != nil {
		return err
	}
	b := ch.Before
	if b.Sub.HasFrom() {
		// The contact stops receiving our presence: tell it we left.
		for _, s := range srv.Router.Sessions(user) {
			if s.Available() {
				srv.Route(stream.New(stream.NSClient, "presence", "type", "unavailable",
					"from", s.JID.String(), "to", contact))
			}
		}
	}
	if b.Sub.HasTo() || b.Ask {
		srv.Route(stream.New(stream.NSClient, "presence", "type", "unsubscribe", "from", from.String(), "to", contact))
	}
	if b.Sub.HasFrom() || b.PendingIn {
		srv.Route(stream.New(stream.NSClient, "presence", "type", "unsubscribed", "from", from.String(), "to", contact))
	}
	return nil
}

// maxResult bounds a roster result (see get).
const maxResult = session.MaxQueue / 2

// listedSize returns user's roster version and the charged size of its
// listed items, from the index.
func listedSize(st *store.Store, user string) (ver uint64, size int64, err error) {
	err = st.View(func(tx *bolt.Tx) error {
		ver = verTx(tx, user)
		eachEntry(tx, user, func(_ string, e entry) bool {
			if e.has(fListed) {
				size += e.cost
			}
			return true
		})
		return nil
	})
	return ver, size, err
}

// Befriend makes a and b (local accounts) subscribe to each other at once,
// as an invite implies: the member accepted the inviter by redeeming it.
func Befriend(srv *server.Server, a, b string) error { return befriend(srv, a, b, "") }

// befriend is Befriend that also files each under group in the other's
// roster (a circle of the admin pages; server.Contacts.Befriend).
func befriend(srv *server.Server, a, b, group string) error {
	for _, p := range [][2]string{{a, b}, {b, a}} {
		contact := p[1] + "@" + srv.Domain
		if _, err := Update(srv, p[0], contact, func(it *Item) error {
			it.Listed, it.Sub, it.Ask, it.PendingIn, it.Approved = true, Both, false, false, false
			if group != "" && !slices.Contains(it.Groups, group) {
				it.Groups = append(it.Groups, group)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
