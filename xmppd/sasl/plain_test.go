package sasl

import "testing"

func TestVerifyPlain(t *testing.T) {
	lookup := lookupFor("alice", "pw")
	if u, err := testServer(lookup).VerifyPlain([]byte("\x00alice\x00pw")); err != nil || u != "alice" {
		t.Fatalf("good password: %q %v", u, err)
	}
	for _, bad := range []string{"\x00alice\x00nope", "\x00mallory\x00pw", "alice\x00pw", "bob\x00alice\x00pw"} {
		if _, err := testServer(lookup).VerifyPlain([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
