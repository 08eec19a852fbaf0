package sasl

import (
	"bytes"
	"crypto/subtle"

	"github.com/hearthchat/hearth/xmppd/store"
)

// PLAIN is off unless the admin allows it for old clients (Debian's
// go-sendxmpp knows nothing else). It is only ever offered over TLS, and the
// password is checked against the stored SCRAM verifiers: no plain-text
// password is stored for it.
const Plain = "PLAIN"

// VerifyPlain checks a PLAIN message (authzid NUL authcid NUL password) and
// returns the normalized user name.
func VerifyPlain(msg []byte, lookup Lookup, prep func(string) (string, error)) (string, error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", ErrMalformed
	}
	user, err := prep(string(parts[1]))
	if err != nil {
		return "", ErrNotAuthorized
	}
	if a := string(parts[0]); a != "" && a != user && !bytes.HasPrefix(parts[0], []byte(user+"@")) {
		return "", ErrInvalidAuthzid
	}
	acct, err := lookup(user)
	if err != nil {
		return "", ErrNotAuthorized
	}
	newHash, _ := New(SHA256, Binding{}, false, nil, nil)
	k := store.DeriveScram(newHash.newHash, string(parts[2]), acct.Salt, acct.Iter)
	if subtle.ConstantTimeCompare(k.StoredKey, acct.SHA256.StoredKey) != 1 {
		return "", ErrNotAuthorized
	}
	return user, nil
}
