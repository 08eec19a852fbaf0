package sasl

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	// mellium's SCRAM client is kept for these tests only: an
	// implementation we did not write checks our server's maths.
	msasl "mellium.im/sasl"
)

func lookupFor(user, pass string) Lookup {
	var a *Credentials
	return func(u string) (*Credentials, error) {
		if u != user {
			return nil, ErrUnknownUser
		}
		if a == nil {
			a = &Credentials{Salt: []byte("0123456789abcdef"), Iter: Iterations}
			a.SHA1, _ = Derive(HashFor(SHA1), pass, a.Salt, a.Iter)
			a.SHA256, _ = Derive(HashFor(SHA256), pass, a.Salt, a.Iter)
		}
		return a, nil
	}
}

func ident(s string) (string, error) { return s, nil }

func testServer(lookup Lookup) *Server {
	return &Server{Lookup: lookup, Prep: ident, SaltKey: []byte("box secret")}
}

// run drives our server against mellium's client, an implementation we did
// not write.
func run(t *testing.T, mech msasl.Mechanism, user, pass string, lookup Lookup) (string, error) {
	t.Helper()
	c := msasl.NewClient(mech, msasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(user), []byte(pass), nil }))
	s, err := testServer(lookup).Start(mech.Name, Binding{}, false)
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
		{"downgrade", "y,,n=alice,r=abc", false, true, ErrDowngrade},
		{"binding without plus", "p=tls-exporter,,n=alice,r=abc", false, false, ErrMalformed},
		{"plus without binding", "n,,n=alice,r=abc", true, true, ErrMalformed},
		{"unknown binding type", "p=tls-unique,,n=alice,r=abc", true, true, ErrUnsupportedCB},
		{"bad escape", "n,,n=al=ZZ,r=abc", false, false, ErrMalformed},
	} {
		mech := SHA256
		if tc.plus {
			mech = SHA256Plus
		}
		s, err := testServer(lookup).Start(mech, Binding{Data: map[string][]byte{"tls-exporter": []byte("cb")}}, tc.offered)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Next([]byte(tc.first)); err != tc.want {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

// The RFC 5802 §7 names of the channel-binding failures, which c2s puts in
// the SASL <failure/>.
func TestServerErrorValues(t *testing.T) {
	for err, want := range map[error]string{
		ErrUnsupportedCB: "unsupported-channel-binding-type",
		ErrNoCB:          "channel-binding-not-supported",
		ErrDowngrade:     "server-does-support-channel-binding",
		ErrCBMismatch:    "channel-bindings-dont-match",
		ErrNotAuthorized: "",
		ErrMalformed:     "",
	} {
		if got := ServerError(err); got != want {
			t.Errorf("ServerError(%v) = %q, want %q", err, got, want)
		}
	}
	if _, err := testServer(nil).Start(SHA256Plus, Binding{}, false); err != ErrNoCB {
		t.Errorf("-PLUS without binding data: %v, want ErrNoCB", err)
	}
}

// saltOf runs the first step for name and returns the salt in the reply.
func saltOf(t *testing.T, srv *Server, name string) []byte {
	t.Helper()
	s, err := srv.Start(SHA256, Binding{}, false)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := s.Next([]byte("n,,n=" + name + ",r=abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Split(string(out), ",") {
		if v, ok := strings.CutPrefix(f, "s="); ok {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no salt in %q", out)
	return nil
}

// A fresh salt per attempt for unknown names (and a fixed one for real
// accounts) told a prober which names exist. The made-up salt is now as
// stable as a real one, differs between names, and between boxes.
func TestUnknownNameSaltIsStableAndKeyed(t *testing.T) {
	lookup := lookupFor("alice", "pw")
	box1 := testServer(lookup)
	box2 := &Server{Lookup: lookup, Prep: ident, SaltKey: []byte("another box")}
	a, b := saltOf(t, box1, "mallory"), saltOf(t, box1, "mallory")
	if !bytes.Equal(a, b) {
		t.Fatalf("two attempts for an unknown name got salts %x and %x", a, b)
	}
	if len(a) != 16 {
		t.Errorf("made-up salt of %d bytes; a real one has 16", len(a))
	}
	if c := saltOf(t, box1, "trudy"); bytes.Equal(a, c) {
		t.Errorf("two unknown names share the salt %x", a)
	}
	if c := saltOf(t, box2, "mallory"); bytes.Equal(a, c) {
		t.Errorf("two boxes give the unknown name the same salt %x", a)
	}
	if real := saltOf(t, box1, "alice"); !bytes.Equal(real, []byte("0123456789abcdef")) {
		t.Errorf("a real account's salt %x is not its stored one", real)
	}
	// Same iteration count as a real account.
	s, _ := box1.Start(SHA256, Binding{}, false)
	out, _, _ := s.Next([]byte("n,,n=mallory,r=abcdef"))
	if !strings.HasSuffix(string(out), ",i=4096") {
		t.Errorf("unknown name: %q, want the real iteration count", out)
	}
}

// Derive and Proof agree: a proof built from the salted password checks
// against the verifiers the store would keep.
func TestDeriveAndProofAgree(t *testing.T) {
	h := HashFor(SHA256)
	salt := []byte("0123456789abcdef")
	k, err := Derive(h, "pw", salt, Iterations)
	if err != nil {
		t.Fatal(err)
	}
	salted, _ := SaltPassword(h, "pw", salt, Iterations)
	proof, sig := Proof(h, salted, "auth message")
	clientKey := mac(h, k.StoredKey, "auth message")
	for i := range clientKey {
		clientKey[i] ^= proof[i]
	}
	sum := h()
	sum.Write(clientKey)
	if !bytes.Equal(sum.Sum(nil), k.StoredKey) {
		t.Fatal("proof does not verify against the derived StoredKey")
	}
	if !bytes.Equal(sig, mac(h, k.ServerKey, "auth message")) {
		t.Fatal("server signature differs")
	}
}
