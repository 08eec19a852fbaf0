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
	"time"

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

// A slow tor (a cold descriptor fetch and rendezvous) is waited for past
// the caller's deadline, which is sized for DNS names, up to
// Onion.DialTimeout; stopping federation ends the wait at once.
func TestOnionDialOwnDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	socks := StartSOCKS(t, func(r SOCKSRequest) (net.Conn, error) {
		if r.Port == 1 {
			<-release // never answers while the test runs
		} else {
			time.Sleep(300 * time.Millisecond) // a slow rendezvous
		}
		return nil, errors.New("the test's tor found no way there")
	})
	s := &S2S{cfg: Config{Onion: Onion{SOCKS: socks.Addr, DialTimeout: 30 * time.Second}}, conns: map[net.Conn]struct{}{}}
	s.cfg.defaults()
	s.ctx, s.stop = context.WithCancel(context.Background())
	defer s.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.dial(ctx, "a.test", onionID(t)+".onion")
	if err == nil || !strings.Contains(err.Error(), "SOCKS reply 0x4") {
		t.Errorf("slow tor: %v; want tor's answer (reply 4), not the caller's deadline", err)
	}

	s.cfg.Port = 1
	done := make(chan error, 1)
	go func() {
		_, err := s.dial(context.Background(), "a.test", onionID(t)+".onion")
		done <- err
	}()
	for len(socks.Requests()) < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	s.stop()
	select {
	case err := <-done:
		if err == nil {
			t.Error("connected")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stopping federation did not end a dial waiting for tor")
	}
}

// Negotiation through tor gets Onion.DialTimeout on top of
// NegotiateTimeout: a peer whose stream header takes longer than
// NegotiateTimeout alone (each round trip crosses a circuit) is still
// heard.
func TestOnionNegotiateTimeout(t *testing.T) {
	socks := StartSOCKS(t, func(r SOCKSRequest) (net.Conn, error) {
		ours, peer := net.Pipe()
		go func() {
			defer peer.Close()
			peer.Read(make([]byte, 4096)) // our stream header
			time.Sleep(400 * time.Millisecond)
			// A header and features without STARTTLS: the dial ends there,
			// for a reason that is not a timeout.
			peer.Write([]byte(header(r.Host, "a.test", "id1") + "<stream:features/>"))
			peer.Read(make([]byte, 1))
		}()
		return ours, nil
	})
	s := &S2S{cfg: Config{NegotiateTimeout: 200 * time.Millisecond, Onion: Onion{SOCKS: socks.Addr, DialTimeout: 5 * time.Second}}, conns: map[net.Conn]struct{}{}}
	s.cfg.defaults()
	_, err := s.dial(context.Background(), "a.test", onionID(t)+".onion")
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Errorf("%v; want the peer heard (no STARTTLS), not a timeout", err)
	}
}

// tor's replies are told in words; a refusal that retrying cannot change
// (client authorization, not an onion address) bounces at once, an
// offline service is retried.
func TestOnionTorReplies(t *testing.T) {
	var code byte
	socks := StartSOCKS(t, func(SOCKSRequest) (net.Conn, error) { return nil, SOCKSReplyError(code) })
	s := &S2S{cfg: Config{Onion: Onion{SOCKS: socks.Addr}}, conns: map[net.Conn]struct{}{}}
	s.cfg.defaults()
	for _, c := range []struct {
		code    byte
		words   string
		refused bool
	}{
		{0xF0, "not published", false},
		{0xF4, "requires client authorization", true},
		{0x06, "no way to the onion service in time", false},
		{0x02, "onion addresses only", true},
		{0x7E, "reply 0x7e", false},
	} {
		code = c.code
		_, err := s.dial(context.Background(), "a.test", onionID(t)+".onion")
		var nf *errNotFound
		if err == nil || !strings.Contains(err.Error(), c.words) || errors.As(err, &nf) != c.refused {
			t.Errorf("reply %#x: %v; want %q, bounced at once %v", c.code, err, c.words, c.refused)
		}
	}
}
