package sasl

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"hash"
	"strings"
)

// The SCRAM key derivation (RFC 5802 §3) lives here and only here: the
// store derives an account's verifiers with Derive, this package's server
// checks proofs against them, and xmppd/client computes its proof with
// SaltPassword and Proof. (There were three copies of these HMACs: the
// store's, the client's and the server's.)

// Iterations is the PBKDF2 cost of new verifiers. 4096 is RFC 7677's
// minimum; it keeps a login on a Pi 3 near ten milliseconds.
const Iterations = 4096

// Keys are the verifiers for one hash: never the password itself.
type Keys struct {
	StoredKey []byte `json:"stored"`
	ServerKey []byte `json:"server"`
}

// HashFor returns the hash of a SCRAM mechanism (with or without -PLUS),
// nil for anything else.
func HashFor(mech string) func() hash.Hash {
	switch strings.TrimSuffix(mech, "-PLUS") {
	case SHA1:
		return sha1.New
	case SHA256:
		return sha256.New
	}
	return nil
}

// SaltPassword is RFC 5802's Hi(): PBKDF2 over the password.
func SaltPassword(newHash func() hash.Hash, password string, salt []byte, iter int) ([]byte, error) {
	return pbkdf2.Key(newHash, password, salt, iter, newHash().Size())
}

// KeysFromSalted derives the client key and the verifiers from a salted
// password.
func KeysFromSalted(newHash func() hash.Hash, salted []byte) (clientKey []byte, k Keys) {
	clientKey = mac(newHash, salted, "Client Key")
	h := newHash()
	h.Write(clientKey)
	return clientKey, Keys{StoredKey: h.Sum(nil), ServerKey: mac(newHash, salted, "Server Key")}
}

// Derive computes the verifiers the store keeps for password.
func Derive(newHash func() hash.Hash, password string, salt []byte, iter int) (Keys, error) {
	salted, err := SaltPassword(newHash, password, salt, iter)
	if err != nil {
		return Keys{}, err
	}
	_, k := KeysFromSalted(newHash, salted)
	return k, nil
}

// Proof is the client's side: the ClientProof for authMsg and the
// ServerSignature the server must answer with.
func Proof(newHash func() hash.Hash, salted []byte, authMsg string) (proof, serverSig []byte) {
	clientKey, k := KeysFromSalted(newHash, salted)
	sig := mac(newHash, k.StoredKey, authMsg)
	proof = make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return proof, mac(newHash, k.ServerKey, authMsg)
}

func mac(newHash func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(newHash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
