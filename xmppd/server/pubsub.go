package server

import (
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// IQResponse: an iq result or error addressed to the server itself or to
// an account's bare JID, i.e. the answer to a request the server sent on
// its own or an account's behalf (PEP's disco#info to a client whose
// entity-capabilities hash it does not know yet, XEP-0115 §6.3). Before
// it such answers were dropped, so the server could not learn a
// client's +notify features. Handlers return true once they recognised
// the answer as theirs.
const IQResponse = "iq-response"

// AccountIdentity is a disco identity of every account's bare JID
// (XEP-0163 §8: an account with PEP is a pubsub/pep service).
type accountIdentitiesKey struct{}

type accountIdentities struct{ l []Identity }

// AddAccountIdentity adds a disco identity of accounts (answered by the
// disco module for an account's bare JID).
func (s *Server) AddAccountIdentity(id Identity) {
	a := State(s, accountIdentitiesKey{}, func() *accountIdentities { return new(accountIdentities) })
	s.mu.Lock()
	defer s.mu.Unlock()
	a.l = append(a.l, id)
}

// AccountIdentities lists the identities added with AddAccountIdentity.
func (s *Server) AccountIdentities() []Identity {
	a := State(s, accountIdentitiesKey{}, func() *accountIdentities { return new(accountIdentities) })
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]Identity(nil), a.l...)
}

// Avatar is the payload of AvatarPublished and VCardPhotoSet: an
// account's avatar image (XEP-0084 data, vCard PHOTO), base64 as both
// carry it. Data "" means the avatar was removed.
type Avatar struct {
	User string
	Type string // MIME type, e.g. image/png
	Data string // base64
}

// AvatarPublished fires after a member published a new avatar over PEP
// (XEP-0084 metadata naming data the account holds): the vcard module
// writes it into the vCard's PHOTO (XEP-0398), so clients that only read
// vCards see it. VCardPhotoSet is the other way: the vcard module fires
// it after a client stored a vCard, and PEP publishes its PHOTO as the
// XEP-0084 avatar. Neither listener fires the other event, so the two
// cannot loop.
var (
	AvatarPublished = NewEvent[Avatar]("avatar-published")
	VCardPhotoSet   = NewEvent[Avatar]("vcard-photo-set")
)

// PrivateStorage is XEP-0049 private XML storage as other modules reach
// it (the private module installs it): PEP keeps XEP-0402 bookmarks and
// the XEP-0048 copy in private storage in step (urn:xmpp:bookmarks:1#compat).
// Put is charged to the account's budget like a client's set but fires no
// PrivateStored, so the two copies cannot echo each other.
type PrivateStorage interface {
	Get(user, space, local string) (*stream.Element, error) // nil if none
	Put(user string, el *stream.Element) error
}

// PrivateData is the payload of PrivateStored.
type PrivateData struct {
	User string
	El   *stream.Element
}

// PrivateStored fires after a client stored an element in its private
// storage (the private module fires it once the write is durable).
var PrivateStored = NewEvent[PrivateData]("private-stored")

type privateKey struct{}

// SetPrivateStorage installs private storage (the private module does).
func (s *Server) SetPrivateStorage(p PrivateStorage) {
	installedAt[PrivateStorage](s, privateKey{}).set(p)
}

// PrivateStorage returns the installed private storage, or nil.
func (s *Server) PrivateStorage() PrivateStorage {
	return installedAt[PrivateStorage](s, privateKey{}).get()
}

// VCard4 is an account's XEP-0292 vCard4 (the PEP node urn:xmpp:vcard4)
// as the vcard module reaches it (PEP installs it), so that vcard-temp
// readers and writers see and change the same card as vCard4 clients
// (the mapping is mod/internal/vcardconv).
type VCard4 interface {
	// Get returns owner's current vCard4 payload as viewer may see it:
	// exists reports whether owner has one at all, card is nil when the
	// node's access model keeps viewer out.
	Get(owner string, viewer jid.JID) (card *stream.Element, exists bool, err error)
	// SetFromLegacy merges the vcard-temp card owner's client stored into
	// owner's vCard4 and notifies it like the owner's publish; it fires no
	// VCard4Changed, so the two cannot echo each other.
	SetFromLegacy(owner string, card *stream.Element) error
}

// VCard4Changed fires (with the account) after a client published,
// retracted, purged or deleted its vCard4: the vcard module drops the
// mapped properties from its stored vcard-temp card, which the vCard4
// now speaks for (a deleted vCard4 must not bring back an older name).
var VCard4Changed = NewEvent[string]("vcard4-changed")

type vcard4Key struct{}

// SetVCard4 installs the vCard4 store (the pep module does).
func (s *Server) SetVCard4(v VCard4) { installedAt[VCard4](s, vcard4Key{}).set(v) }

// VCard4 returns the installed vCard4 store, or nil.
func (s *Server) VCard4() VCard4 { return installedAt[VCard4](s, vcard4Key{}).get() }

// AccountItem is a disco#items entry of an account (a PEP node).
type AccountItem struct{ JID, Node, Name string }

type accountItemsKey struct{}

type accountItems struct {
	mu  sync.Mutex
	fns []func(owner string, viewer jid.JID) []AccountItem
}

// AddAccountItems adds a source of an account's disco#items (PEP lists
// the nodes viewer may read); the disco module answers with them.
func (s *Server) AddAccountItems(fn func(owner string, viewer jid.JID) []AccountItem) {
	a := State(s, accountItemsKey{}, func() *accountItems { return new(accountItems) })
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fns = append(a.fns, fn)
}

// AccountItems is owner's disco#items as viewer sees them.
func (s *Server) AccountItems(owner string, viewer jid.JID) []AccountItem {
	a := State(s, accountItemsKey{}, func() *accountItems { return new(accountItems) })
	a.mu.Lock()
	fns := a.fns
	a.mu.Unlock()
	var out []AccountItem
	for _, fn := range fns {
		out = append(out, fn(owner, viewer)...)
	}
	return out
}
