package onion

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cretz/bine/torutil"
	toredkey "github.com/cretz/bine/torutil/ed25519"

	"github.com/hearthchat/hearth/appliance/config"
)

// The key directory has the layout of a tor HiddenServiceDir, in tor's own
// file formats, so that an admin who ever wants to move the address to a
// plain tor can copy the directory as it is (and tests can check the files
// with tor itself).
const (
	secretKeyFile = "hs_ed25519_secret_key"
	publicKeyFile = "hs_ed25519_public_key"
	hostnameFile  = "hostname"

	// tor writes a 32-byte, NUL-padded tag in front of its key files.
	secretTag = "== ed25519v1-secret: type0 =="
	publicTag = "== ed25519v1-public: type0 =="
	tagLen    = 32
)

// ErrKeyDamaged means a key file exists but is not a valid key. We never
// replace it on our own: a new key is a new address, and everybody who
// uses the old one would lose the box.
var ErrKeyDamaged = errors.New("onion key file is damaged")

// key is an onion service's identity: tor's 64-byte expanded ed25519 secret
// key, which is what ADD_ONION takes.
type key struct {
	secret toredkey.PrivateKey
	public toredkey.PublicKey
}

// Address is the service's .onion host name.
func (k key) Address() string {
	return torutil.OnionServiceIDFromV3PublicKey(k.public) + ".onion"
}

// serviceID is the address without ".onion", as tor's control port uses it.
func (k key) serviceID() string {
	return torutil.OnionServiceIDFromV3PublicKey(k.public)
}

func newKey() (key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return key{}, fmt.Errorf("onion: generate key: %w", err)
	}
	kp := toredkey.FromCryptoPrivateKey(priv)
	return key{secret: kp.PrivateKey(), public: kp.PublicKey()}, nil
}

// loadOrCreateKey returns the key kept in dir, creating and saving a new one
// (before anything is published) when there is none. created tells which.
func loadOrCreateKey(dir string) (k key, created bool, err error) {
	if err := ensurePrivateDir(dir); err != nil {
		return key{}, false, err
	}
	k, err = loadKey(dir)
	if err == nil {
		// The derived files are conveniences; put them back if lost.
		return k, false, writeDerived(dir, k, false)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return key{}, false, err
	}
	if k, err = newKey(); err != nil {
		return key{}, false, err
	}
	if err := saveKey(dir, k); err != nil {
		return key{}, false, err
	}
	return k, true, nil
}

// loadKey reads the secret key from dir. A missing file gives an error
// matching fs.ErrNotExist; anything unreadable as a key gives ErrKeyDamaged.
func loadKey(dir string) (key, error) {
	b, err := os.ReadFile(filepath.Join(dir, secretKeyFile))
	if err != nil {
		return key{}, fmt.Errorf("onion: read key: %w", err)
	}
	if len(b) != tagLen+toredkey.PrivateKeySize || !bytes.Equal(b[:tagLen], tag(secretTag)) {
		return key{}, fmt.Errorf("%w: %s has the wrong size or header", ErrKeyDamaged, secretKeyFile)
	}
	secret := toredkey.PrivateKey(bytes.Clone(b[tagLen:]))
	// An expanded ed25519 scalar is clamped; a flipped bit here would give a
	// different (and useless) address.
	if secret[0]&7 != 0 || secret[31]&0x80 != 0 || secret[31]&0x40 == 0 {
		return key{}, fmt.Errorf("%w: %s does not hold a valid key", ErrKeyDamaged, secretKeyFile)
	}
	k := key{secret: secret, public: secret.PublicKey()}
	// When the public key is there, it must match: this catches a secret
	// key that was damaged in a way the checks above cannot see.
	if pb, err := os.ReadFile(filepath.Join(dir, publicKeyFile)); err == nil {
		if len(pb) != tagLen+toredkey.PublicKeySize || !bytes.Equal(pb[:tagLen], tag(publicTag)) ||
			!bytes.Equal(pb[tagLen:], k.public) {
			return key{}, fmt.Errorf("%w: %s does not match %s", ErrKeyDamaged, publicKeyFile, secretKeyFile)
		}
	}
	return k, nil
}

// saveKey writes the secret key first (atomically, 0600): once it is on
// disk the address is fixed. The public key and hostname follow.
func saveKey(dir string, k key) error {
	b := append(tag(secretTag), k.secret...)
	if err := config.WriteFileAtomic(filepath.Join(dir, secretKeyFile), b, 0o600); err != nil {
		return fmt.Errorf("onion: save key: %w", err)
	}
	return writeDerived(dir, k, true)
}

// writeDerived writes the public key and hostname files when missing (or
// always, with force).
func writeDerived(dir string, k key, force bool) error {
	files := []struct {
		name string
		data []byte
	}{
		{publicKeyFile, append(tag(publicTag), k.public...)},
		{hostnameFile, []byte(k.Address() + "\n")},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if !force {
			if _, err := os.Stat(p); err == nil {
				continue
			}
		}
		if err := config.WriteFileAtomic(p, f.data, 0o600); err != nil {
			return fmt.Errorf("onion: save key: %w", err)
		}
	}
	return nil
}

func tag(s string) []byte {
	b := make([]byte, tagLen)
	copy(b, s)
	return b
}

// ensurePrivateDir creates dir 0700, and tightens it if it exists with a
// looser mode (tor itself refuses key and data directories others can read).
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("onion: %w", err)
		}
	}
	return nil
}

// LoadAddress returns the onion address kept in the state directory's tor
// folder (state.Dir.Tor()) without starting tor, or "" when no key has been
// made yet. The setup pages can show it even while tor is off.
func LoadAddress(dataDir string) (string, error) {
	k, err := loadKey(keyDir(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return k.Address(), nil
}

// ValidAddress reports whether s is a well-formed v3 onion address
// (56 base32 characters with a correct checksum, then ".onion").
func ValidAddress(s string) bool {
	id, ok := strings.CutSuffix(s, ".onion")
	if !ok || len(id) != 56 || strings.ToLower(id) != id {
		return false
	}
	_, err := torutil.PublicKeyFromV3OnionServiceID(id)
	return err == nil
}
