package client

import (
	"strings"
	"testing"
)

// Test vectors from RFC 5802 §5 (SHA-1) and RFC 7677 §3 (SHA-256).
func TestScramVectors(t *testing.T) {
	tests := []struct {
		mech, cnonce, serverFirst, clientFinal, serverFinal string
	}{
		{ScramSHA1, "fyko+d2lbbFgONRv9qkxdawL",
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="},
		{ScramSHA256, "rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
	}
	for _, tt := range tests {
		t.Run(tt.mech, func(t *testing.T) {
			var cache KeyCache
			for round := 0; round < 2; round++ { // the second round hits the cache
				s, err := newScram(tt.mech, "user", "pencil", &cache)
				if err != nil {
					t.Fatal(err)
				}
				s.cnonce = tt.cnonce
				if got, want := string(s.first()), "n,,n=user,r="+tt.cnonce; got != want {
					t.Fatalf("first = %q, want %q", got, want)
				}
				cf, err := s.final([]byte(tt.serverFirst))
				if err != nil {
					t.Fatal(err)
				}
				if string(cf) != tt.clientFinal {
					t.Fatalf("final = %q, want %q", cf, tt.clientFinal)
				}
				if err := s.verify([]byte(tt.serverFinal)); err != nil {
					t.Fatalf("verify: %v", err)
				}
				if err := s.verify([]byte("v=AAAA" + tt.serverFinal[6:])); err == nil {
					t.Fatal("verify accepted a wrong server signature")
				}
			}
			if len(cache.m) != 1 {
				t.Fatalf("cache holds %d keys, want 1", len(cache.m))
			}
		})
	}
}

func TestScramRejects(t *testing.T) {
	tests := []struct{ name, serverFirst, want string }{
		{"foreign nonce", "r=otherNonce123,s=QSXCR+Q6sek8bf92,i=4096", "nonce"},
		{"unextended nonce", "r=abc,s=QSXCR+Q6sek8bf92,i=4096", "nonce"},
		{"bad salt", "r=abcdef,s=!!!,i=4096", "salt"},
		{"zero iterations", "r=abcdef,s=QSXCR+Q6sek8bf92,i=0", "iteration"},
		{"huge iterations", "r=abcdef,s=QSXCR+Q6sek8bf92,i=999999999", "iteration"},
		{"mandatory extension", "m=ext,r=abcdef,s=QSXCR+Q6sek8bf92,i=4096", "extension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := newScram(ScramSHA256, "user", "pencil", nil)
			if err != nil {
				t.Fatal(err)
			}
			s.cnonce = "abc"
			_, err = s.final([]byte(tt.serverFirst))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	s, _ := newScram(ScramSHA1, "user", "pencil", nil)
	if err := s.verify([]byte("e=invalid-proof")); err == nil || !strings.Contains(err.Error(), "invalid-proof") {
		t.Fatalf("verify(e=…) = %v", err)
	}
	if err := s.verify([]byte("v=AAAA")); err == nil {
		t.Fatal("verify before final accepted a signature")
	}
}

func TestScramUsernameEscaping(t *testing.T) {
	s, _ := newScram(ScramSHA1, "a,b=c", "x", nil)
	s.cnonce = "n"
	if got := string(s.first()); got != "n,,n=a=2Cb=3Dc,r=n" {
		t.Fatalf("first = %q", got)
	}
}
