// Package private is XEP-0049 private XML storage: a client keeps its own
// data (bookmarks, settings) on the server, one element per namespace.
package private

import (
	"errors"
	"strings"

	"github.com/hearthchat/hearth/xmppd/mod/internal/xmlkv"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "jabber:iq:private"

// MaxSize bounds one stored element.
const MaxSize = 64 << 10

// MaxPerSet bounds how many elements one set may store, so a single iq
// cannot turn into an unbounded number of writes.
const MaxPerSet = 16

// Per-account totals. Each namespace is its own key, so the per-element
// limit alone let one member grow the database by 68 MB in under three
// minutes (and bbolt never gives the space back). A client keeps a
// handful of namespaces (bookmarks, a few app settings): 64 keys and
// 1 MiB (key and value bytes) leave ample room for that.
const (
	MaxKeys  = 64
	MaxBytes = 1 << 20
)

// Kind is what private storage is charged as in the account's budget.
const Kind = "private"

// ErrFull answers a set that would take the account past its totals.
// RFC 6120 §8.3.3.18: resource-constraint, type wait; XEP-0049 names no
// condition for this. Storing the empty element frees a namespace.
var ErrFull = &server.StanzaError{Type: "wait", Condition: "resource-constraint",
	Text: "private storage is full: clear a namespace by storing its empty element"}

// Register adds jabber:iq:private.
func Register(srv *server.Server) {
	kv, err := xmlkv.NewCharged(srv.Store, "private", Kind, store.Limit{Bytes: MaxBytes, Items: MaxKeys})
	if err != nil {
		// Only a failing disk gets here; new writes are still charged,
		// only data from before accounting is uncounted.
		srv.Log.Error("private: charge existing data", "err", err)
	}
	srv.AddFeature(server.ToServer, ns)
	srv.HandleIQ(server.ToAccount, "get", ns, "query", func(st *server.Stanza) (*stream.Element, error) {
		data, err := check(st)
		if err != nil {
			return nil, err
		}
		// §2: one namespace per get.
		if len(data) != 1 {
			return nil, server.ErrBadRequest
		}
		el, err := kv.Get(key(st, data[0]))
		if err != nil {
			return nil, err
		}
		if el == nil {
			el = data[0] // nothing stored: the empty element asked for
		}
		return stream.New(ns, "query").Add(el), nil
	})
	srv.HandleIQ(server.ToAccount, "set", ns, "query", func(st *server.Stanza) (*stream.Element, error) {
		data, err := check(st)
		if err != nil {
			return nil, err
		}
		if len(data) > MaxPerSet {
			return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "too many elements"}
		}
		puts := make([]xmlkv.Put, len(data))
		for i, d := range data {
			if len(d.Append(nil, stream.NSClient)) > MaxSize {
				return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "too large"}
			}
			puts[i] = xmlkv.Put{Key: key(st, d), El: d}
		}
		if err := kv.PutAll(puts); err != nil {
			if errors.Is(err, store.ErrQuota) {
				return nil, ErrFull
			}
			return nil, err
		}
		for _, d := range data {
			server.PrivateStored.Fire(srv, server.PrivateData{User: st.To.Localpart(), El: d})
		}
		return nil, nil
	})
	srv.SetPrivateStorage(shared{kv})
	srv.OnAccountDeleted(func(user string) { kv.DeleteUser(user) })
}

// check applies the rules common to get and set and returns the elements
// to get or store.
func check(st *server.Stanza) ([]*stream.Element, error) {
	// §3: only the account itself; forbidden rather than
	// service-unavailable, as the XEP prefers.
	if st.Origin == nil || st.To.Localpart() != st.From.Localpart() {
		return nil, server.ErrForbidden
	}
	data := st.El.FirstChild().Children()
	if len(data) == 0 {
		return nil, server.ErrNotAcceptable
	}
	for _, d := range data {
		// §3: the jabber:* namespaces are reserved (that includes
		// jabber:iq:private itself and unqualified children, which
		// inherit it).
		if d.Space == "" || strings.HasPrefix(d.Space, "jabber:") {
			return nil, server.ErrNotAcceptable
		}
	}
	return data, nil
}

func key(st *server.Stanza, el *stream.Element) []byte {
	return store.Key(st.To.Localpart(), el.Space, el.Local)
}

// shared is private storage for other modules (server.PrivateStorage):
// PEP keeps the XEP-0048 bookmarks copy here.
type shared struct{ kv *xmlkv.KV }

func (s shared) Get(user, space, local string) (*stream.Element, error) {
	return s.kv.Get(store.Key(user, space, local))
}

func (s shared) Put(user string, el *stream.Element) error {
	if len(el.Append(nil, stream.NSClient)) > MaxSize {
		return &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "too large"}
	}
	return s.kv.Put(store.Key(user, el.Space, el.Local), el)
}
