package sasl

import (
	"errors"
	"hash"
	"testing"
	"time"

	msasl "mellium.im/sasl"

	"github.com/hearthchat/hearth/xmppd/store"
)

func lookupFor(user, pass string) Lookup {
	var a *store.Account
	return func(u string) (*store.Account, error) {
		if u != user {
			return nil, store.ErrNotFound
		}
		if a == nil {
			dir := store.Account{Salt: []byte("0123456789abcdef"), Iter: store.ScramIterations, Created: time.Now()}
			a = &dir
			a.SHA1 = store.DeriveScram(hashFor(SHA1), pass, a.Salt, a.Iter)
			a.SHA256 = store.DeriveScram(hashFor(SHA256), pass, a.Salt, a.Iter)
		}
		return a, nil
	}
}

func hashFor(mech string) func() hash.Hash {
	s, _ := New(mech, Binding{}, false, nil, nil)
	return s.newHash
}

func ident(s string) (string, error) { return s, nil }

// run drives our server against mellium's client, an implementation we did
// not write.
func run(t *testing.T, mech msasl.Mechanism, user, pass string, lookup Lookup) (string, error) {
	t.Helper()
	c := msasl.NewClient(mech, msasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(pass), nil }))
	s, err := New(mech.Name, Binding{}, false, lookup, ident)
	if err != nil {
		t.Fatal(err)
	}
	_, resp, err := c.Step(nil)
	if err != nil {
		t.Fatal(err)
	}
	for {
		out, done, err := s.Next(resp)
		if err != nil {
			return "", err
		}
		_, resp, err = c.Step(out)
		if err != nil {
			return "", errors.New("client rejected server: " + err.Error())
		}
		if done {
			return s.User(), nil
		}
	}
}

func TestScramAgainstMelliumClient(t *testing.T) {
	lookup := lookupFor("alice", "correct horse")
	for _, m := range []msasl.Mechanism{msasl.ScramSha1, msasl.ScramSha256} {
		if u, err := run(t, m, "alice", "correct horse", lookup); err != nil || u != "alice" {
			t.Errorf("%s good password: user %q err %v", m.Name, u, err)
		}
		if _, err := run(t, m, "alice", "wrong", lookup); err != ErrNotAuthorized {
			t.Errorf("%s wrong password: err %v", m.Name, err)
		}
		if _, err := run(t, m, "mallory", "x", lookup); err != ErrNotAuthorized {
			t.Errorf("%s unknown user: err %v", m.Name, err)
		}
	}
}

func TestScramRejects(t *testing.T) {
	lookup := lookupFor("alice", "pw")
	for _, tc := range []struct {
		name, first   string
		plus, offered bool
		want          error
	}{
		{"garbage", "xyz", false, false, ErrMalformed},
		{"no nonce", "n,,n=alice", false, false, ErrMalformed},
		{"downgrade", "y,,n=alice,r=abc", false, true, ErrNotAuthorized},
		{"binding without plus", "p=tls-exporter,,n=alice,r=abc", false, false, ErrMalformed},
		{"plus without binding", "n,,n=alice,r=abc", true, true, ErrMalformed},
		{"unknown binding type", "p=tls-unique,,n=alice,r=abc", true, true, ErrUnsupportedCB},
		{"bad escape", "n,,n=al=ZZ,r=abc", false, false, ErrMalformed},
	} {
		mech := SHA256
		if tc.plus {
			mech = SHA256Plus
		}
		s, err := New(mech, Binding{Data: map[string][]byte{"tls-exporter": []byte("cb")}}, tc.offered, lookup, ident)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Next([]byte(tc.first)); err != tc.want {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}
