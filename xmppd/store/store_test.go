package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/sasl"
)

func TestAccounts(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateAccount("alice", "pw", false); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount("alice", "pw2", false); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	a, err := s.Account("alice")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := sasl.Derive(sha256.New, "pw", a.Salt, a.Iter); !bytes.Equal(want.StoredKey, a.SHA256.StoredKey) {
		t.Fatal("stored key does not match the password")
	}
	if _, err := s.Account("bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaNewerRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "db")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	s.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("schema"), U64(SchemaVersion+1)) })
	s.Close()
	if _, err := Open(p); err == nil {
		t.Fatal("opened a database from a newer schema")
	}
}

func TestBackupIsOpenable(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(filepath.Join(dir, "db"))
	s.CreateAccount("alice", "pw", false)
	if err := s.BackupFile(filepath.Join(dir, "copy")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	c, err := Open(filepath.Join(dir, "copy"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Account("alice"); err != nil {
		t.Fatalf("backup lacks the account: %v", err)
	}
}
