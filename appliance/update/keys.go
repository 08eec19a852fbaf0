// Package update is Hearth's update agent: it polls a signed feed, verifies
// a new release with TUF before writing anything, installs it on the
// inactive root partition through gokrazy, boots it on trial, and commits
// it only once xmppd passes its health gate — otherwise the box goes back
// to the version it ran before.
//
// The feed is a static directory (any web server, or a USB stick):
//
//	metadata/root.json, 1.root.json, timestamp.json, snapshot.json, targets.json
//	targets/hearth-<arch>.root.squashfs
//
// Each target carries {"release": N, "version": "…"} as custom metadata.
package update

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Roles are TUF's four top-level roles; each gets its own key so that the
// online ones (timestamp) can be rotated without touching the root.
var Roles = []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP}

// RootExpiry is how long a generated root of trust stays valid. A box that
// is offline longer needs a new image.
const RootExpiry = 10 * 365 * 24 * time.Hour

// Keys are the signing keys of one feed.
type Keys struct {
	Private map[string]ed25519.PrivateKey
	// Root is the signed root metadata (version 1) made from these keys:
	// the root of trust an image bakes in.
	Root []byte
}

// LoadOrCreateKeys reads the keys in dir, or generates them (and the signed
// root metadata, dir/root.json) on first use. Keys never leave dir, which
// must stay out of version control.
func LoadOrCreateKeys(dir string) (*Keys, error) {
	k := &Keys{Private: map[string]ed25519.PrivateKey{}}
	rootPath := filepath.Join(dir, "root.json")
	root, err := os.ReadFile(rootPath)
	if errors.Is(err, fs.ErrNotExist) {
		return createKeys(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("update keys: %w", err)
	}
	k.Root = root
	for _, role := range Roles {
		b, err := os.ReadFile(filepath.Join(dir, role+".key"))
		if err != nil {
			return nil, fmt.Errorf("update keys: %w", err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("update keys: %s.key: no PEM block", role)
		}
		pk, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("update keys: %s.key: %w", role, err)
		}
		ed, ok := pk.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("update keys: %s.key: not an ed25519 key", role)
		}
		k.Private[role] = ed
	}
	return k, nil
}

func createKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("update keys: %w", err)
	}
	k := &Keys{Private: map[string]ed25519.PrivateKey{}}
	root := metadata.Root(time.Now().UTC().Add(RootExpiry))
	// Plain file names: the feed holds one release at a time and is
	// replaced whole, which a static directory or USB stick makes easy.
	root.Signed.ConsistentSnapshot = false
	for _, role := range Roles {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("update keys: %w", err)
		}
		k.Private[role] = priv
		pub, err := metadata.KeyFromPublicKey(priv.Public())
		if err != nil {
			return nil, fmt.Errorf("update keys: %w", err)
		}
		if err := root.Signed.AddKey(pub, role); err != nil {
			return nil, fmt.Errorf("update keys: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		// Written before root.json: a crash leaves no root.json, so the next
		// run starts over instead of using a root without its keys.
		if err := os.WriteFile(filepath.Join(dir, role+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("update keys: %w", err)
		}
	}
	if err := sign(root, k.Private[metadata.ROOT]); err != nil {
		return nil, err
	}
	b, err := root.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("update keys: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "root.json"), b, 0o644); err != nil {
		return nil, fmt.Errorf("update keys: %w", err)
	}
	k.Root = b
	return k, nil
}

// signable is what all four metadata kinds share.
type signable interface {
	Sign(signature.Signer) (*metadata.Signature, error)
}

func sign(md signable, key ed25519.PrivateKey) error {
	s, err := signature.LoadSigner(key, crypto.Hash(0))
	if err != nil {
		return fmt.Errorf("update: signer: %w", err)
	}
	if _, err := md.Sign(s); err != nil {
		return fmt.Errorf("update: sign: %w", err)
	}
	return nil
}
