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
)

// Mechanism names.
const (
	SHA1       = "SCRAM-SHA-1"
	SHA1Plus   = "SCRAM-SHA-1-PLUS"
	SHA256     = "SCRAM-SHA-256"
	SHA256Plus = "SCRAM-SHA-256-PLUS"
)

// Failure conditions (RFC 6120 §6.5). Their Error() is the condition.
var (
	ErrMalformed      = errors.New("malformed-request")
	ErrNotAuthorized  = errors.New("not-authorized")
	ErrInvalidAuthzid = errors.New("invalid-authzid")
	ErrEncryption     = errors.New("encryption-required")
	ErrInvalidMech    = errors.New("invalid-mechanism")
)

// Failures decided by the channel-binding rules, before any password is
// looked at (RFC 5802 §6). None of them is a password guess, so c2s keeps
// them out of the SASL back-off; ServerError names each one's RFC 5802 §7
// server-error-value.
var (
	// ErrUnsupportedCB is a -PLUS attempt with a binding type this
	// connection cannot provide: Debian's slixmpp asks for tls-unique even
	// over TLS 1.3, where it does not exist, then falls back to plain SCRAM.
	ErrUnsupportedCB = &cbError{"unsupported-channel-binding-type"}
	// ErrNoCB is a -PLUS mechanism on a connection without channel
	// binding (we did not offer -PLUS there).
	ErrNoCB = &cbError{"channel-binding-not-supported"}
	// ErrDowngrade is the "y" flag after we advertised -PLUS: the client
	// can bind but believes we cannot, so somebody stripped the -PLUS
	// mechanisms on the way.
	ErrDowngrade = &cbError{"server-does-support-channel-binding"}
	// ErrCBMismatch: the binding data differ from this TLS connection's
	// (a man in the middle, or a client bug). The proof is not checked.
	ErrCBMismatch = &cbError{"channel-bindings-dont-match"}
)

type cbError struct{ value string }

func (e *cbError) Error() string { return "scram: " + e.value }

// ServerError is the RFC 5802 §7 server-error-value of err ("" when RFC
// 5802 names none we want to tell: a wrong password and an unknown user
// are both plain not-authorized, so replies do not reveal which names
// exist).
func ServerError(err error) string {
	var e *cbError
	if errors.As(err, &e) {
		return e.value
	}
	return ""
}

// Binding is what the TLS connection offers for channel binding.
type Binding struct {
	// Data for each supported type, e.g. "tls-exporter", "tls-server-end-point".
	Data map[string][]byte
}

// Credentials are a user's stored verifiers.
type Credentials struct {
	Salt   []byte
	Iter   int
	SHA1   Keys
	SHA256 Keys
}

// ErrUnknownUser is what a Lookup returns for a name without an account.
var ErrUnknownUser = errors.New("sasl: no such user")

// Lookup finds a user's verifiers; any error counts as an unknown user,
// and the exchange then continues with made-up values so that timing and
// replies do not reveal which names exist.
type Lookup func(user string) (*Credentials, error)

// Server holds what every exchange of one server shares.
type Server struct {
	Lookup Lookup
	// Prep normalizes a user name (the JID localpart rules).
	Prep func(string) (string, error)
	// SaltKey keys the made-up salt of names without an account. It must
	// be secret and stable for the box: a fresh random salt per attempt
	// told a prober which names exist (a real account's salt never
	// changes), and a salt derived without a secret could be computed by
	// the prober too.
	SaltKey []byte
}

// Scram is one server-side exchange.
type Scram struct {
	srv     *Server
	mech    string
	newHash func() hash.Hash
	plus    bool
	offered bool // we advertised -PLUS (so a "y" flag means a downgrade)
	binding Binding

	step       int
	user       string
	name       string // the name the client gave, prepared when it could be
	gs2Header  string
	cbType     string
	clientBare string
	serverMsg  string
	nonce      string
	keys       Keys
	known      bool
	ssdp       string // XEP-0474 hash sent as "h" (Advertised); "" for none
}

// Start begins an exchange for mech on a connection with binding b;
// offeredPlus says whether -PLUS variants were advertised on it.
func (srv *Server) Start(mech string, b Binding, offeredPlus bool) (*Scram, error) {
	s := &Scram{srv: srv, mech: mech, binding: b, offered: offeredPlus}
	switch mech {
	case SHA1, SHA256:
	case SHA1Plus, SHA256Plus:
		s.plus = true
	default:
		return nil, ErrInvalidMech
	}
	s.newHash = HashFor(mech)
	if s.plus && len(b.Data) == 0 {
		return nil, ErrNoCB
	}
	return s, nil
}

// FakeSalt is the salt shown for a name without an account: an HMAC of
// the prepared name under SaltKey, the same for every attempt at that
// name on this box and unpredictable without the key.
func (srv *Server) FakeSalt(name string) []byte {
	m := hmac.New(sha256.New, srv.SaltKey)
	m.Write([]byte("scram-salt\x00"))
	m.Write([]byte(name))
	return m.Sum(nil)[:16] // the length of a real account's salt
}

// User is the authenticated (normalized) user name, once Next returned done.
func (s *Scram) User() string { return s.user }

// Name is the user name the client asked for, prepared where it could be,
// once the client's first message was read; also for names without an
// account (back-off per name counts those too).
func (s *Scram) Name() string { return s.name }

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
			return nil, ErrDowngrade
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
	s.name = name
	var salt []byte
	iter := Iterations
	if user, err := s.srv.Prep(name); err == nil {
		s.name = user
		if a, err := s.srv.Lookup(user); err == nil && a != nil {
			s.user, s.known, salt, iter = user, true, a.Salt, a.Iter
			if s.newHash().Size() == sha1.Size {
				s.keys = a.SHA1
			} else {
				s.keys = a.SHA256
			}
		}
	}
	if !s.known {
		salt = s.srv.FakeSalt(s.name)
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
	if s.ssdp != "" {
		// An optional attribute (RFC 5802 §5.1): clients that do not
		// know XEP-0474 skip it; it is part of AuthMessage either way.
		s.serverMsg += ",h=" + s.ssdp
	}
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
		return nil, ErrCBMismatch
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
