package sasl

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
)

// HT-SHA-256-NONE (draft-schmaus-kitten-sasl-ht), the mechanism of FAST
// tokens (XEP-0484): the client proves it holds a token by sending its
// name and HMAC-SHA-256(token, "Initiator"); the server answers with
// HMAC-SHA-256(token, "Responder"). Without channel binding ("NONE") both
// values are the same on every use, which is what lets the server keep
// only a hash of the first (store/fast.go): a stolen database does not
// log anybody in. The -ENDP variant mixes the TLS certificate into both
// and would need the token itself at rest, so it is not offered.
const HTSHA256None = "HT-SHA-256-NONE"

// HTInitiator is the client's proof for token (HT-*-NONE).
func HTInitiator(token []byte) []byte { return htMAC(token, "Initiator") }

// HTResponder is the server's answer for token (HT-*-NONE).
func HTResponder(token []byte) []byte { return htMAC(token, "Responder") }

func htMAC(token []byte, label string) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// ParseHT splits an HT initial response into the user name and the
// initiator proof.
func ParseHT(msg []byte) (user string, proof []byte, err error) {
	i := bytes.IndexByte(msg, 0)
	if i <= 0 || len(msg)-i-1 != sha256.Size {
		return "", nil, ErrMalformed
	}
	return string(msg[:i]), msg[i+1:], nil
}
