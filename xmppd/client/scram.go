package client

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"

	"github.com/hearthchat/hearth/xmppd/sasl"
)

// Mechanisms this client speaks, best first. The key derivation is
// xmppd/sasl's, the same code the server and the store use.
const (
	ScramSHA256 = sasl.SHA256
	ScramSHA1   = sasl.SHA1
)

func hashFor(mech string) func() hash.Hash { return sasl.HashFor(mech) }

// KeyCache remembers salted passwords by (mechanism, password, salt,
// iterations). PBKDF2 is deliberately slow; a load generator that logs the
// same accounts in again would otherwise measure its own hashing instead of
// the server. Safe for concurrent use. The zero value is ready.
type KeyCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (kc *KeyCache) salted(mech, password string, salt []byte, iter int) ([]byte, error) {
	key := mech + "\x00" + password + "\x00" + string(salt) + "\x00" + strconv.Itoa(iter)
	if kc != nil {
		kc.mu.Lock()
		v, ok := kc.m[key]
		kc.mu.Unlock()
		if ok {
			return v, nil
		}
	}
	v, err := sasl.SaltPassword(hashFor(mech), password, salt, iter)
	if err != nil {
		return nil, err
	}
	if kc != nil {
		kc.mu.Lock()
		if kc.m == nil {
			kc.m = make(map[string][]byte)
		}
		kc.m[key] = v
		kc.mu.Unlock()
	}
	return v, nil
}

// scram is the client side of one SCRAM exchange (RFC 5802, RFC 7677);
// without channel binding ("n,,") unless bind was called (-PLUS).
type scram struct {
	mech      string
	cbType    string
	cbData    []byte
	user      string
	password  string
	cnonce    string
	cache     *KeyCache
	authMsg   string
	serverSig []byte
}

// maxIterations refuses absurd counts a hostile server could use to burn
// our CPU; real servers use 4096–100000.
const maxIterations = 1 << 20

func newScram(mech, user, password string, cache *KeyCache) (*scram, error) {
	if hashFor(mech) == nil {
		return nil, fmt.Errorf("client: unsupported mechanism %q", mech)
	}
	var nonce [18]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	return &scram{mech: mech, user: user, password: password,
		cnonce: base64.RawStdEncoding.EncodeToString(nonce[:]), cache: cache}, nil
}

func (s *scram) bare() string {
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	return "n=" + name + ",r=" + s.cnonce
}

// gs2 is the GS2 header: channel binding or none.
func (s *scram) gs2() string {
	if s.cbType != "" {
		return "p=" + s.cbType + ",,"
	}
	return "n,,"
}

// first is the client-first-message.
func (s *scram) first() []byte { return []byte(s.gs2() + s.bare()) }

// final answers the server-first-message with the client-final-message.
func (s *scram) final(serverFirst []byte) ([]byte, error) {
	var nonce, salt64, iters string
	for _, f := range strings.Split(string(serverFirst), ",") {
		if len(f) < 2 || f[1] != '=' {
			continue
		}
		switch f[0] {
		case 'r':
			nonce = f[2:]
		case 's':
			salt64 = f[2:]
		case 'i':
			iters = f[2:]
		case 'm':
			return nil, errors.New("client: scram: unsupported mandatory extension")
		}
	}
	if !strings.HasPrefix(nonce, s.cnonce) || len(nonce) == len(s.cnonce) {
		return nil, errors.New("client: scram: server nonce does not extend ours")
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil || len(salt) == 0 {
		return nil, fmt.Errorf("client: scram: bad salt %q", salt64)
	}
	iter, err := strconv.Atoi(iters)
	if err != nil || iter < 1 || iter > maxIterations {
		return nil, fmt.Errorf("client: scram: bad iteration count %q", iters)
	}
	salted, err := s.cache.salted(s.mech, s.password, salt, iter)
	if err != nil {
		return nil, fmt.Errorf("client: scram: pbkdf2: %w", err)
	}
	if strings.HasSuffix(s.mech, "-PLUS") != (s.cbType != "") {
		return nil, fmt.Errorf("client: scram: %s with channel binding %q", s.mech, s.cbType)
	}
	cb := base64.StdEncoding.EncodeToString(append([]byte(s.gs2()), s.cbData...))
	withoutProof := "c=" + cb + ",r=" + nonce
	s.authMsg = s.bare() + "," + string(serverFirst) + "," + withoutProof
	var proof []byte
	proof, s.serverSig = sasl.Proof(hashFor(s.mech), salted, s.authMsg)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks the server-final-message, proving the server knew our
// verifier too.
func (s *scram) verify(serverFinal []byte) error {
	msg := string(serverFinal)
	if strings.HasPrefix(msg, "e=") {
		return fmt.Errorf("client: scram: server error %q", msg[2:])
	}
	if !strings.HasPrefix(msg, "v=") {
		return fmt.Errorf("client: scram: unexpected server-final %q", msg)
	}
	v := msg[2:]
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil || s.serverSig == nil || !hmac.Equal(got, s.serverSig) {
		return errors.New("client: scram: server signature mismatch")
	}
	return nil
}

// Scram is one client SCRAM exchange for callers that put the bytes on the
// wire themselves (the literal test clients of xmppd/internal/xmpptest and
// xmppd/e2e): the maths are this package's, which are xmppd/sasl's.
type Scram struct{ s *scram }

// NewScram starts an exchange. For a -PLUS mechanism call Bind before
// First.
func NewScram(mech, user, password string) (*Scram, error) {
	s, err := newScram(mech, user, password, nil)
	if err != nil {
		return nil, err
	}
	return &Scram{s}, nil
}

// Bind binds the exchange to the TLS channel: typ is the binding type
// ("tls-exporter", "tls-server-end-point"), data its value.
func (s *Scram) Bind(typ string, data []byte) { s.s.cbType, s.s.cbData = typ, data }

// First is the client-first-message.
func (s *Scram) First() []byte { return s.s.first() }

// Final answers the server-first-message with the client-final-message.
func (s *Scram) Final(serverFirst []byte) ([]byte, error) { return s.s.final(serverFirst) }

// Verify checks the server-final-message.
func (s *Scram) Verify(serverFinal []byte) error { return s.s.verify(serverFinal) }

// Exporter is the RFC 9266 tls-exporter channel binding of a TLS 1.3
// connection.
func Exporter(cs tls.ConnectionState) ([]byte, error) {
	return cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
}
