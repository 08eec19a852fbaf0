package sasl

import "testing"

func TestVerifyPlain(t *testing.T) {
	lookup := lookupFor("alice", "pw")
	if u, err := VerifyPlain([]byte("\x00alice\x00pw"), lookup, ident); err != nil || u != "alice" {
		t.Fatalf("good password: %q %v", u, err)
	}
	for _, bad := range []string{"\x00alice\x00nope", "\x00mallory\x00pw", "alice\x00pw", "bob\x00alice\x00pw"} {
		if _, err := VerifyPlain([]byte(bad), lookup, ident); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
