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
