package server

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
