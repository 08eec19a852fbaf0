package xmppd

import (
	"crypto/sha1"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/sasl"
	"github.com/hearthchat/hearth/xmppd/store"
)

// An account imported from Prosody has SCRAM-SHA-1 verifiers only: the web
// login accepts its password (it checked SHA-256 only and refused it) and
// completes the SHA-256 verifiers, so apps that pick SCRAM-SHA-256 can log
// in afterwards; a wrong password completes nothing.
func TestWebLoginCompletesImportedVerifiers(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	salt := []byte("0123456789abcdef")
	k1, err := sasl.Derive(sha1.New, "prosody pw", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(func(tx *bolt.Tx) error {
		return store.CreateAccountRecordTx(tx, "juliet", &store.Account{Salt: salt, Iter: 4096, SHA1: k1})
	}); err != nil {
		t.Fatal(err)
	}
	a := webAccounts{st: st}
	if ok, _ := a.Check("juliet", "wrong"); ok {
		t.Fatal("a wrong password accepted")
	}
	if acc, _ := st.Account("juliet"); len(acc.SHA256.StoredKey) != 0 {
		t.Fatal("a wrong password completed the verifiers")
	}
	if ok, _ := a.Check("juliet", "prosody pw"); !ok {
		t.Fatal("the imported account's password refused")
	}
	acc, err := st.Account("juliet")
	if err != nil || len(acc.SHA256.StoredKey) == 0 {
		t.Fatalf("SHA-256 verifiers not completed: %+v %v", acc, err)
	}
	if k, _ := sasl.Derive(sha1.New, "prosody pw", acc.Salt, acc.Iter); string(k.StoredKey) != string(k1.StoredKey) {
		t.Fatal("the SHA-1 verifiers changed")
	}
	// From now on the ordinary SHA-256 check applies.
	if ok, _ := a.Check("juliet", "prosody pw"); !ok {
		t.Fatal("second login refused")
	}
}
