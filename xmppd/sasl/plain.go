package sasl

import (
	"bytes"
	"crypto/subtle"
)

// PLAIN is off unless the admin allows it for old clients (Debian's
// go-sendxmpp knows nothing else). It is only ever offered over TLS, and the
// password is checked against the stored SCRAM verifiers: no plain-text
// password is stored for it.
const Plain = "PLAIN"

// VerifyPlain checks a PLAIN message (authzid NUL authcid NUL password) and
// returns the normalized user name. On ErrNotAuthorized it still returns
// the name tried (prepared where it could be), for back-off per name.
func (srv *Server) VerifyPlain(msg []byte) (string, error) {
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return "", ErrMalformed
	}
	user, err := srv.Prep(string(parts[1]))
	if err != nil {
		return string(parts[1]), ErrNotAuthorized
	}
	if a := string(parts[0]); a != "" && a != user && !bytes.HasPrefix(parts[0], []byte(user+"@")) {
		return "", ErrInvalidAuthzid
	}
	acct, err := srv.Lookup(user)
	if err != nil || acct == nil {
		return user, ErrNotAuthorized
	}
	k, err := Derive(HashFor(SHA256), string(parts[2]), acct.Salt, acct.Iter)
	if err != nil || subtle.ConstantTimeCompare(k.StoredKey, acct.SHA256.StoredKey) != 1 {
		return user, ErrNotAuthorized
	}
	return user, nil
}
