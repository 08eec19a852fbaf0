// Package sasl is the server side of SCRAM (RFC 5802, RFC 7677) with
// channel binding (RFC 9266 tls-exporter, RFC 5929 tls-server-end-point).
//
// We do not use mellium.im/sasl's server: a probe found it panics on
// SCRAM-PLUS and never reaches the credential lookup. The maths are a few
// HMACs; the state machine and its checks are what matter, and they are here.
package sasl

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"

	"github.com/hearthchat/hearth/xmppd/store"
)

// Mechanism names.
const (
	SHA1       = "SCRAM-SHA-1"
	SHA1Plus   = "SCRAM-SHA-1-PLUS"
	SHA256     = "SCRAM-SHA-256"
	SHA256Plus = "SCRAM-SHA-256-PLUS"
)

// Failure conditions (RFC 6120 §6.5).
var (
	ErrMalformed      = errors.New("malformed-request")
	ErrNotAuthorized  = errors.New("not-authorized")
	ErrInvalidAuthzid = errors.New("invalid-authzid")
	ErrEncryption     = errors.New("encryption-required")
	// ErrUnsupportedCB is a -PLUS attempt with a binding type this
	// connection cannot provide (slixmpp asks for tls-unique even over TLS
	// 1.3). It fails the attempt without counting as a password guess, so
	// the client can fall back to plain SCRAM.
	ErrUnsupportedCB = errors.New("unsupported channel binding type")
)

// Binding is what the TLS connection offers for channel binding.
type Binding struct {
	// Data for each supported type, e.g. "tls-exporter", "tls-server-end-point".
	Data map[string][]byte
}

// Lookup finds a user's verifiers. It returns store.ErrNotFound for unknown
// users; the exchange then continues with made-up values so that timing
// and replies do not reveal which names exist.
type Lookup func(user string) (*store.Account, error)

// Scram is one server-side exchange.
type Scram struct {
	mech    string
	newHash func() hash.Hash
	plus    bool
	offered bool // we advertised -PLUS (so a "y" flag means a downgrade)
	binding Binding
	lookup  Lookup
	prep    func(string) (string, error)

	step       int
	user       string
	gs2Header  string
	cbType     string
	clientBare string
	serverMsg  string
	nonce      string
	keys       store.ScramKeys
	known      bool
}

// New starts an exchange for mech. prep normalizes the user name (the JID
// localpart rules); offeredPlus says whether -PLUS variants were advertised.
func New(mech string, b Binding, offeredPlus bool, lookup Lookup, prep func(string) (string, error)) (*Scram, error) {
	s := &Scram{mech: mech, binding: b, offered: offeredPlus, lookup: lookup, prep: prep}
	switch mech {
	case SHA1:
		s.newHash = sha1.New
	case SHA1Plus:
		s.newHash, s.plus = sha1.New, true
	case SHA256:
		s.newHash = sha256.New
	case SHA256Plus:
		s.newHash, s.plus = sha256.New, true
	default:
		return nil, errors.New("invalid-mechanism")
	}
	if s.plus && len(b.Data) == 0 {
		return nil, errors.New("invalid-mechanism")
	}
	return s, nil
}

// User is the authenticated (normalized) user name, once Next returned done.
func (s *Scram) User() string { return s.user }

// Next consumes a client message and returns the server's reply. done is
// true with the server-final message (to be sent in <success/>).
func (s *Scram) Next(in []byte) (out []byte, done bool, err error) {
	switch s.step {
	case 0:
		s.step++
		out, err = s.first(string(in))
		return out, false, err
	case 1:
		s.step++
		out, err = s.final(string(in))
		return out, err == nil, err
	}
	return nil, false, ErrMalformed
}

func (s *Scram) first(msg string) ([]byte, error) {
	// gs2-header: cbflag "," [authzid] ","
	parts := strings.SplitN(msg, ",", 3)
	if len(parts) != 3 {
		return nil, ErrMalformed
	}
	flag, authz := parts[0], parts[1]
	switch {
	case flag == "n":
		if s.plus {
			return nil, ErrMalformed
		}
	case flag == "y":
		// The client supports binding but thinks we do not. We did
		// advertise it, so somebody stripped it: a downgrade.
		if s.plus || s.offered {
			return nil, ErrNotAuthorized
		}
	case strings.HasPrefix(flag, "p="):
		if !s.plus {
			return nil, ErrMalformed
		}
		s.cbType = flag[2:]
		if _, ok := s.binding.Data[s.cbType]; !ok {
			return nil, ErrUnsupportedCB
		}
	default:
		return nil, ErrMalformed
	}
	if authz != "" {
		if !strings.HasPrefix(authz, "a=") {
			return nil, ErrMalformed
		}
		// Acting as another user is not supported; authorizing as
		// ourselves is, and is checked after the proof.
	}
	s.gs2Header = flag + "," + authz + ","
	s.clientBare = parts[2]
	attrs := strings.Split(s.clientBare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, ErrMalformed
	}
	if strings.HasPrefix(attrs[0], "m=") {
		return nil, ErrMalformed // mandatory extensions we do not know
	}
	name, err := decodeName(attrs[0][2:])
	if err != nil {
		return nil, ErrMalformed
	}
	cnonce := attrs[1][2:]
	if cnonce == "" || strings.ContainsAny(cnonce, ",") {
		return nil, ErrMalformed
	}
	var salt []byte
	iter := store.ScramIterations
	if user, err := s.prep(name); err == nil {
		if a, err := s.lookup(user); err == nil {
			s.user, s.known, salt, iter = user, true, a.Salt, a.Iter
			if s.newHash().Size() == sha1.Size {
				s.keys = a.SHA1
			} else {
				s.keys = a.SHA256
			}
		}
	}
	if !s.known {
		salt = make([]byte, 16)
		rand.Read(salt)
	}
	if authz != "" && s.known {
		if a := authz[2:]; a != s.user && !strings.HasPrefix(a, s.user+"@") {
			return nil, ErrInvalidAuthzid
		}
	}
	snonce := make([]byte, 18)
	rand.Read(snonce)
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(snonce)
	s.serverMsg = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(salt) + ",i=" + strconv.Itoa(iter)
	return []byte(s.serverMsg), nil
}

func (s *Scram) final(msg string) ([]byte, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, ErrMalformed
	}
	without, proofB64 := msg[:i], msg[i+3:]
	attrs := strings.Split(without, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, ErrMalformed
	}
	cb, err := base64.StdEncoding.DecodeString(attrs[0][2:])
	if err != nil {
		return nil, ErrMalformed
	}
	want := []byte(s.gs2Header)
	if s.plus {
		want = append(want, s.binding.Data[s.cbType]...)
	}
	if subtle.ConstantTimeCompare(cb, want) != 1 {
		return nil, ErrNotAuthorized
	}
	if attrs[1][2:] != s.nonce {
		return nil, ErrNotAuthorized
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil {
		return nil, ErrMalformed
	}
	authMsg := s.clientBare + "," + s.serverMsg + "," + without
	if !s.known || len(proof) != len(s.keys.StoredKey) {
		return nil, ErrNotAuthorized
	}
	sig := mac(s.newHash, s.keys.StoredKey, authMsg)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	h := s.newHash()
	h.Write(clientKey)
	if subtle.ConstantTimeCompare(h.Sum(nil), s.keys.StoredKey) != 1 {
		return nil, ErrNotAuthorized
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(mac(s.newHash, s.keys.ServerKey, authMsg))), nil
}

func mac(newHash func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(newHash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// decodeName undoes SCRAM's "=2C"/"=3D" escaping.
func decodeName(s string) (string, error) {
	if !strings.Contains(s, "=") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", ErrMalformed
		}
		switch s[i+1 : i+3] {
		case "2C":
			b.WriteByte(',')
		case "3D":
			b.WriteByte('=')
		default:
			return "", ErrMalformed
		}
		i += 2
	}
	return b.String(), nil
}
