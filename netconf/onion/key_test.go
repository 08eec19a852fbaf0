package onion

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	toredkey "github.com/cretz/bine/torutil/ed25519"
)

// RFC 8032 test 1; the address was computed independently from the v3
// address rules (rend-spec-v3 §6) with Python's hashlib.
const (
	rfcSeed    = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfcPublic  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	rfcAddress = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
)

func rfcKey(t *testing.T) key {
	t.Helper()
	seed, _ := hex.DecodeString(rfcSeed)
	kp := toredkey.FromCryptoPrivateKey(ed25519.NewKeyFromSeed(seed))
	return key{secret: kp.PrivateKey(), public: kp.PublicKey()}
}

func TestKnownAddress(t *testing.T) {
	k := rfcKey(t)
	if got := hex.EncodeToString(k.secret.PublicKey()); got != rfcPublic {
		t.Fatalf("public key from expanded secret = %s, want %s", got, rfcPublic)
	}
	if got := k.Address(); got != rfcAddress {
		t.Fatalf("address = %s, want %s", got, rfcAddress)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tor", "onion")
	k, created, err := loadOrCreateKey(dir)
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	if !ValidAddress(k.Address()) {
		t.Fatalf("generated address %q is not valid", k.Address())
	}
	k2, created, err := loadOrCreateKey(dir)
	if err != nil || created {
		t.Fatalf("second load: created=%v err=%v", created, err)
	}
	if k2.Address() != k.Address() || !bytes.Equal(k2.secret, k.secret) {
		t.Fatalf("reloaded key differs: %s vs %s", k2.Address(), k.Address())
	}

	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode = %v (%v), want 0700", st.Mode().Perm(), err)
	}
	for _, name := range []string{secretKeyFile, publicKeyFile, hostnameFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", name, st.Mode().Perm())
		}
	}
	// No temporary files left behind by the atomic writes.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Errorf("key dir holds %d entries, want 3: %v", len(ents), ents)
	}

	b, _ := os.ReadFile(filepath.Join(dir, secretKeyFile))
	if len(b) != 96 || string(b[:32]) != "== ed25519v1-secret: type0 ==\x00\x00\x00" {
		t.Errorf("secret key file is not in tor's format: %q", b[:min(32, len(b))])
	}
	h, _ := os.ReadFile(filepath.Join(dir, hostnameFile))
	if string(h) != k.Address()+"\n" {
		t.Errorf("hostname file = %q", h)
	}
	addr, err := LoadAddress(filepath.Dir(dir))
	if err != nil || addr != k.Address() {
		t.Errorf("LoadAddress = %q, %v; want %q", addr, err, k.Address())
	}
}

func TestLoadAddressWithoutKey(t *testing.T) {
	addr, err := LoadAddress(t.TempDir())
	if err != nil || addr != "" {
		t.Fatalf("LoadAddress on empty dir = %q, %v", addr, err)
	}
}

func TestLooseDirIsTightened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "onion")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateKey(dir); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, want 0700", st.Mode().Perm())
	}
}

func TestDerivedFilesRestored(t *testing.T) {
	dir := t.TempDir()
	k := rfcKey(t)
	if err := saveKey(dir, k); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, publicKeyFile))
	os.Remove(filepath.Join(dir, hostnameFile))
	k2, created, err := loadOrCreateKey(dir)
	if err != nil || created || k2.Address() != rfcAddress {
		t.Fatalf("load = %s created=%v err=%v", k2.Address(), created, err)
	}
	h, err := os.ReadFile(filepath.Join(dir, hostnameFile))
	if err != nil || string(h) != rfcAddress+"\n" {
		t.Fatalf("hostname not restored: %q %v", h, err)
	}
	if _, err := os.Stat(filepath.Join(dir, publicKeyFile)); err != nil {
		t.Fatalf("public key not restored: %v", err)
	}
}

// A damaged key must be reported, never silently replaced: a new key would
// be a new address.
func TestDamagedKeyIsKept(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"truncated", func(t *testing.T, dir string) {
			p := filepath.Join(dir, secretKeyFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:50], 0o600)
		}},
		{"empty", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, secretKeyFile), nil, 0o600)
		}},
		{"wrong header", func(t *testing.T, dir string) {
			p := filepath.Join(dir, secretKeyFile)
			b, _ := os.ReadFile(p)
			copy(b, "== ed25519v1-public: type0 ==")
			os.WriteFile(p, b, 0o600)
		}},
		{"unclamped scalar", func(t *testing.T, dir string) {
			p := filepath.Join(dir, secretKeyFile)
			b, _ := os.ReadFile(p)
			b[32] |= 1
			os.WriteFile(p, b, 0o600)
		}},
		{"bit flip caught by public key", func(t *testing.T, dir string) {
			p := filepath.Join(dir, secretKeyFile)
			b, _ := os.ReadFile(p)
			b[40] ^= 0x10
			os.WriteFile(p, b, 0o600)
		}},
		{"public key mismatch", func(t *testing.T, dir string) {
			p := filepath.Join(dir, publicKeyFile)
			b, _ := os.ReadFile(p)
			b[len(b)-1] ^= 1
			os.WriteFile(p, b, 0o600)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := keyDir(t.TempDir())
			if err := ensurePrivateDir(dir); err != nil {
				t.Fatal(err)
			}
			if err := saveKey(dir, rfcKey(t)); err != nil {
				t.Fatal(err)
			}
			c.damage(t, dir)
			before, _ := os.ReadFile(filepath.Join(dir, secretKeyFile))
			_, _, err := loadOrCreateKey(dir)
			if !errors.Is(err, ErrKeyDamaged) {
				t.Fatalf("err = %v, want ErrKeyDamaged", err)
			}
			after, _ := os.ReadFile(filepath.Join(dir, secretKeyFile))
			if !bytes.Equal(before, after) {
				t.Fatal("damaged key file was changed")
			}
			if _, err := LoadAddress(filepath.Dir(dir)); !errors.Is(err, ErrKeyDamaged) {
				t.Fatal("LoadAddress accepted a damaged key")
			}
		})
	}
}

func TestValidAddress(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{rfcAddress, true},
		{"25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid", false},       // no .onion
		{"25NJQAMCWEFLPVKL73J4SZAHHIHOC4XT3KTCGJNPAINGR5YHKENL5SID.onion", false}, // upper case
		{"35njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion", false}, // checksum
		{"25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5si.onion", false},  // short
		{"facebookcorewwwi.onion", false},                                         // v2
		{"", false},
	}
	for _, c := range cases {
		if got := ValidAddress(c.in); got != c.want {
			t.Errorf("ValidAddress(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
