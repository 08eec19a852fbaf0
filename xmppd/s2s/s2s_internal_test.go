package s2s

import (
	"context"
	"errors"
	"net"
	"testing"
)

func TestDialbackKey(t *testing.T) {
	secret := []byte("s3cr3t-of-this-box")
	k := Key(secret, "prosody.test", "hearth.test", "id1")
	if len(k) != 64 {
		t.Fatalf("key %q: want 64 hex digits (HMAC-SHA256)", k)
	}
	if Key(secret, "prosody.test", "hearth.test", "id1") != k {
		t.Fatal("key not deterministic: a verify after a restart would fail")
	}
	for name, other := range map[string]string{
		"other id":        Key(secret, "prosody.test", "hearth.test", "id2"),
		"other receiving": Key(secret, "evil.test", "hearth.test", "id1"),
		"swapped":         Key(secret, "hearth.test", "prosody.test", "id1"),
		"other secret":    Key([]byte("another box"), "prosody.test", "hearth.test", "id1"),
	} {
		if other == k {
			t.Errorf("%s: same key", name)
		}
	}
	if !checkKey(secret, "prosody.test", "hearth.test", "id1", k) {
		t.Error("own key refused")
	}
	if checkKey(secret, "prosody.test", "hearth.test", "id1", k[:63]+"0") || checkKey(secret, "prosody.test", "hearth.test", "", Key(secret, "prosody.test", "hearth.test", "")) {
		t.Error("forged key or empty stream id accepted")
	}
}

func testS2S(resolver string) *S2S {
	s := &S2S{cfg: Config{Resolver: Resolver(resolver)}}
	s.cfg.defaults()
	return s
}

func TestTargets(t *testing.T) {
	d := StartDNS(t)
	// Direct TLS and STARTTLS at the same priority: direct first; a lower
	// priority number first whatever its kind.
	d.SRV(t, "xmpps-server", "mixed.test", 10, 0, 5270, "tls.mixed.test")
	d.SRV(t, "xmpp-server", "mixed.test", 10, 0, 5269, "plain.mixed.test")
	d.SRV(t, "xmpp-server", "mixed.test", 5, 0, 5269, "first.mixed.test")
	d.SRV(t, "xmpp-server", "plain.test", 0, 0, 5999, "xmpp.plain.test")
	d.Host(t, "noSRV.test", "192.0.2.1")
	d.SRV(t, "xmpp-server", "dot.test", 0, 0, 0, ".")
	s := testS2S(d.Addr)
	ctx := context.Background()
	for _, c := range []struct {
		domain string
		want   []target
	}{
		{"mixed.test", []target{{"first.mixed.test", 5269, false}, {"tls.mixed.test", 5270, true}, {"plain.mixed.test", 5269, false}}},
		{"plain.test", []target{{"xmpp.plain.test", 5999, false}}},
		{"nosrv.test", []target{{"nosrv.test", 5269, false}}},     // RFC 6120 §3.2.2 fallback
		{"missing.test", []target{{"missing.test", 5269, false}}}, // NXDOMAIN: the fallback's address lookup decides
	} {
		got, err := s.targets(ctx, c.domain)
		if err != nil {
			t.Errorf("%s: %v", c.domain, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.domain, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: %v, want %v", c.domain, got, c.want)
				break
			}
		}
	}
	_, err := s.targets(ctx, "dot.test")
	var nf *errNotFound
	if !errors.As(err, &nf) {
		t.Errorf("dot.test (SRV target \".\"): %v, want not found", err)
	}
	// A name without any address: not found at once (no retrying).
	_, err = s.dial(ctx, "a.test", "missing.test")
	if !errors.As(err, &nf) {
		t.Errorf("missing.test: %v, want not found", err)
	}
}

func TestRefusedTargets(t *testing.T) {
	d := StartDNS(t)
	d.Host(t, "loop.test", "127.0.0.1")
	d.SRV(t, "xmpp-server", "srvloop.test", 0, 0, 5269, "loop.test")
	d.Host(t, "ll.test", "169.254.1.1")
	s := testS2S(d.Addr)
	for _, dom := range []string{"loop.test", "srvloop.test", "ll.test"} {
		_, err := s.dial(context.Background(), "a.test", dom)
		var nf *errNotFound
		if !errors.As(err, &nf) {
			t.Errorf("%s: %v, want refused (not found)", dom, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "169.254.3.3", "fe80::1", "0.0.0.0"} {
		if s.refusedIP(net.ParseIP(ip)) == "" {
			t.Errorf("%s allowed", ip)
		}
	}
	if why := s.refusedIP(net.ParseIP("192.0.2.7")); why != "" {
		t.Errorf("192.0.2.7 refused: %s", why)
	}
	s.cfg.AllowLocal = true
	if why := s.refusedIP(net.ParseIP("127.0.0.1")); why != "" {
		t.Errorf("AllowLocal: loopback refused: %s", why)
	}
}
