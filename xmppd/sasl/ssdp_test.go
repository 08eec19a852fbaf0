package sasl

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

func TestDowngradeHash(t *testing.T) {
	// XEP-0474: sorted mechanisms joined by 0x1E, 0x1F, sorted binding
	// types joined by 0x1E; order as advertised does not matter.
	want := sha256.Sum256([]byte("SCRAM-SHA-1\x1eSCRAM-SHA-256\x1eSCRAM-SHA-256-PLUS\x1ftls-exporter\x1etls-server-end-point"))
	got := DowngradeHash(sha256.New, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1"}, []string{"tls-server-end-point", "tls-exporter"}, true)
	if got != base64.StdEncoding.EncodeToString(want[:]) {
		t.Fatalf("hash %s", got)
	}
	none := sha256.Sum256([]byte("SCRAM-SHA-1\x1eSCRAM-SHA-256"))
	if got := DowngradeHash(sha256.New, []string{"SCRAM-SHA-256", "SCRAM-SHA-1"}, nil, false); got != base64.StdEncoding.EncodeToString(none[:]) {
		t.Fatalf("without channel binding: %s", got)
	}
}

func TestServerFirstCarriesDowngradeHash(t *testing.T) {
	srv := &Server{Lookup: func(string) (*Credentials, error) { return nil, ErrUnknownUser }, Prep: func(s string) (string, error) { return s, nil }, SaltKey: []byte("k")}
	s, err := srv.Start(SHA256, Binding{}, false)
	if err != nil {
		t.Fatal(err)
	}
	s.Advertised([]string{SHA256, SHA1}, nil, false)
	out, _, err := s.Next([]byte("n,,n=alice,r=abc"))
	if err != nil {
		t.Fatal(err)
	}
	if want := ",h=" + DowngradeHash(sha256.New, []string{SHA1, SHA256}, nil, false); !strings.HasSuffix(string(out), want) {
		t.Fatalf("server-first %q lacks %s", out, want)
	}
}

func TestParseHT(t *testing.T) {
	proof := HTInitiator([]byte("tok"))
	user, p, err := ParseHT(append([]byte("alice\x00"), proof...))
	if err != nil || user != "alice" || string(p) != string(proof) {
		t.Fatalf("%q %v", user, err)
	}
	for _, bad := range []string{"", "alice", "\x00" + string(proof), "alice\x00short"} {
		if _, _, err := ParseHT([]byte(bad)); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

// Monal (which checks XEP-0474's hash) greases both client messages with
// optional attributes (g= after the nonce, x= before the proof): RFC 5802
// allows them, and they are part of AuthMessage.
func TestOptionalClientAttributes(t *testing.T) {
	srv := &Server{Lookup: lookupFor("alice", "pw"), Prep: ident, SaltKey: []byte("k")}
	s, err := srv.Start(SHA256, Binding{}, false)
	if err != nil {
		t.Fatal(err)
	}
	s.Advertised([]string{SHA256, SHA1}, nil, false)
	bare := "n=alice,r=cnonce123,g=5a1e"
	first, _, err := s.Next([]byte("n,," + bare))
	if err != nil {
		t.Fatal(err)
	}
	var nonce, salt64 string
	for _, f := range strings.Split(string(first), ",") {
		switch f[:2] {
		case "r=":
			nonce = f[2:]
		case "s=":
			salt64 = f[2:]
		}
	}
	salt, _ := base64.StdEncoding.DecodeString(salt64)
	salted, _ := SaltPassword(HashFor(SHA256), "pw", salt, Iterations)
	without := "c=biws,r=" + nonce + ",x=9f"
	proof, sig := Proof(HashFor(SHA256), salted, bare+","+string(first)+","+without)
	final, done, err := s.Next([]byte(without + ",p=" + base64.StdEncoding.EncodeToString(proof)))
	if err != nil || !done || string(final) != "v="+base64.StdEncoding.EncodeToString(sig) {
		t.Fatalf("final %q done=%v: %v", final, done, err)
	}
}
