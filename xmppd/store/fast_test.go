package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/sasl"
)

func fastStore(t *testing.T) *Store {
	s, err := Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.CreateAccount("alice", "pw", false); err != nil {
		t.Fatal(err)
	}
	return s
}

func use(s *Store, id, tok string, now time.Time) (bool, error) {
	resp, renew, err := s.UseFAST("alice", id, sasl.HTSHA256None, sasl.HTInitiator([]byte(tok)), now)
	if err == nil && !bytes.Equal(resp, sasl.HTResponder([]byte(tok))) {
		return false, fmt.Errorf("wrong responder")
	}
	return renew, err
}

// The token itself is nowhere in the file, nor anything that logs in: only
// the hash of its proof and the server's answer.
func TestFASTTokenHashedAtRest(t *testing.T) {
	s := fastStore(t)
	tok, _, err := s.IssueFAST("alice", "dev1", sasl.HTSHA256None, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			if bytes.Contains(v, []byte(tok)) || strings.Contains(string(v), string(sasl.HTInitiator([]byte(tok)))) {
				t.Fatalf("token or its proof stored: %s", v)
			}
			return nil
		})
	})
}

func TestFASTExpiryRenewalAndMechanism(t *testing.T) {
	s := fastStore(t)
	now := time.Now()
	tok, exp, err := s.IssueFAST("alice", "dev1", sasl.HTSHA256None, now)
	if err != nil || exp.Sub(now) < FASTLifetime-time.Second {
		t.Fatalf("issue: %v %v", exp, err)
	}
	if renew, err := use(s, "dev1", tok, now.Add(time.Hour)); err != nil || renew {
		t.Fatalf("fresh token: renew=%v %v", renew, err)
	}
	if renew, err := use(s, "dev1", tok, now.Add(FASTLifetime*3/4)); err != nil || !renew {
		t.Fatalf("old token: renew=%v %v", renew, err)
	}
	if _, err := use(s, "dev1", tok, now.Add(FASTLifetime+time.Minute)); !errors.Is(err, ErrFASTRefused) {
		t.Fatalf("expired token: %v", err)
	}
	if _, _, err := s.UseFAST("alice", "dev1", "HT-SHA-256-ENDP", sasl.HTInitiator([]byte(tok)), now); !errors.Is(err, ErrFASTRefused) {
		t.Fatalf("token used with another mechanism: %v", err)
	}
}

func TestFASTRevokedByPasswordAndDeletion(t *testing.T) {
	s := fastStore(t)
	now := time.Now()
	s.SeenDevice("alice", "dev1", "Monal", "iPhone", now)
	tok, _, _ := s.IssueFAST("alice", "dev1", sasl.HTSHA256None, now)
	if err := s.SetPassword("alice", "pw2"); err != nil {
		t.Fatal(err)
	}
	if _, err := use(s, "dev1", tok, now); !errors.Is(err, ErrFASTRefused) {
		t.Fatalf("token after password change: %v", err)
	}
	devs, _ := s.Devices("alice")
	if len(devs) != 1 || !devs[0].TokenExpiry.IsZero() || devs[0].Software != "Monal" {
		t.Fatalf("devices after password change: %+v", devs)
	}
	if err := s.DeleteDevices("alice"); err != nil {
		t.Fatal(err)
	}
	if devs, _ := s.Devices("alice"); len(devs) != 0 {
		t.Fatalf("devices after deletion: %+v", devs)
	}
}

// A client inventing user-agent ids cannot grow the file: the least
// recently used devices go.
func TestDevicesBounded(t *testing.T) {
	s := fastStore(t)
	now := time.Now()
	for i := range MaxDevices + 10 {
		if err := s.SeenDevice("alice", fmt.Sprint("dev", i), "x", "", now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	devs, err := s.Devices("alice")
	if err != nil || len(devs) != MaxDevices || devs[0].ID != fmt.Sprint("dev", MaxDevices+9) || devs[len(devs)-1].ID != "dev10" {
		t.Fatalf("%d devices, newest %v, oldest %v: %v", len(devs), devs[0].ID, devs[len(devs)-1].ID, err)
	}
}

func TestRevokeAllFAST(t *testing.T) {
	s := fastStore(t)
	now := time.Now()
	a, _, _ := s.IssueFAST("alice", "dev1", sasl.HTSHA256None, now)
	b, _, _ := s.IssueFAST("alice", "dev2", sasl.HTSHA256None, now)
	if _, err := use(s, "dev1", a, now); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAllFAST("alice"); err != nil {
		t.Fatal(err)
	}
	for id, tok := range map[string]string{"dev1": a, "dev2": b} {
		if _, err := use(s, id, tok, now); !errors.Is(err, ErrFASTRefused) {
			t.Fatalf("%s after revoke: %v", id, err)
		}
	}
	if devs, _ := s.Devices("alice"); len(devs) != 2 || !devs[0].TokenExpiry.IsZero() {
		t.Fatalf("devices after revoke: %+v", devs)
	}
}
