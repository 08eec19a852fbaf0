package s2s

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cretz/bine/torutil"
	toredkey "github.com/cretz/bine/torutil/ed25519"
)

func onionID(t *testing.T) string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return torutil.OnionServiceIDFromV3PublicKey(toredkey.FromCryptoPublicKey(pub))
}

func TestOnionHost(t *testing.T) {
	id := onionID(t)
	// The last character carries the version (3): another one breaks
	// the checksum or the version.
	bad := id[:50] + strings.Map(func(r rune) rune {
		if r == 'a' {
			return 'b'
		}
		return 'a'
	}, id[50:51]) + id[51:]
	for domain, want := range map[string]string{
		id + ".onion":                   id + ".onion",
		"groups." + id + ".onion":       id + ".onion",
		strings.ToUpper(id) + ".ONION.": id + ".onion",
		bad + ".onion":                  "",
		"short.onion":                   "",
		id[:55] + ".onion":              "",
		".onion":                        "",
	} {
		got, err := onionHost(domain)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("onionHost(%q) = %q, %v; want %q", domain, got, err, want)
		}
	}
	if !IsOnion("x."+id+".onion.") || IsOnion("onion.example") || IsOnion("onion") {
		t.Error("IsOnion")
	}
}

// An onion domain without Tor, or a misspelt one, bounces at once
// (remote-server-not-found), and no resolver is ever asked.
func TestOnionUnreachableBouncesAtOnce(t *testing.T) {
	asked := 0
	s := &S2S{cfg: Config{Resolver: &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		asked++
		return nil, errors.New("no DNS in this test")
	}}}, conns: map[net.Conn]struct{}{}}
	s.cfg.defaults()
	id := onionID(t)
	for _, c := range []struct{ socks, domain, why string }{
		{"", id + ".onion", "Tor is off"},
		{"unix:" + filepath.Join(t.TempDir(), "socks.sock"), id + ".onion", "tor is not running"},
		{"unix:/nonexistent/socks.sock", "nothing.onion", "not a v3 onion address"},
	} {
		s.cfg.Onion.SOCKS = c.socks
		_, err := s.dial(context.Background(), "a.test", c.domain)
		var nf *errNotFound
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s via %q: %v; want a not-found error saying %q", c.domain, c.socks, err, c.why)
		}
	}
	if asked != 0 {
		t.Errorf("the resolver was dialled %d times", asked)
	}
}

// tor's SOCKS port refusing the connection (tor restarting) is retried,
// not bounced.
func TestOnionSOCKSDownRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &S2S{cfg: Config{Onion: Onion{SOCKS: addr}}, conns: map[net.Conn]struct{}{}}
	s.cfg.defaults()
	_, err = s.dial(context.Background(), "a.test", onionID(t)+".onion")
	var nf *errNotFound
	if err == nil || errors.As(err, &nf) {
		t.Errorf("SOCKS port down: %v; want an error to retry", err)
	}
}
