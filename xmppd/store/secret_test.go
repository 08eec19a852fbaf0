package store

import (
	"bytes"
	"path/filepath"
	"testing"
)

// A box's secret survives a restart; another box has another one.
func TestSecretIsStableAndPerBox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Secret("scram-salt")
	if err != nil || len(a) != 32 {
		t.Fatalf("secret %x, %v", a, err)
	}
	if other, _ := s.Secret("something-else"); bytes.Equal(a, other) {
		t.Fatal("two names share a secret")
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if b, _ := s.Secret("scram-salt"); !bytes.Equal(a, b) {
		t.Fatalf("secret changed across a restart: %x then %x", a, b)
	}
	s2, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if c, _ := s2.Secret("scram-salt"); bytes.Equal(a, c) {
		t.Fatal("two boxes have the same secret")
	}
}
