package netconf

import (
	"slices"
	"testing"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/netconf/acme"
)

// On the box xmppd owns :80 and :443: the HTTP-01 listener must be the
// loopback address xmppd's web server forwards to, and TLS-ALPN-01 (which
// would need :443) must be off. Before, the listener defaulted to :80.
func TestACMEListensBehindWeb(t *testing.T) {
	s := New(Options{State: state.Dir(t.TempDir())})
	cfg := config.Default()
	cfg.Domain = "club.example"
	o, err := s.acmeOptions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o.HTTPAddr != state.ACMEChallengeAddr {
		t.Errorf("HTTPAddr %q, want %q", o.HTTPAddr, state.ACMEChallengeAddr)
	}
	if slices.Contains(o.Challenges, acme.TLSALPN01) || !slices.Contains(o.Challenges, acme.HTTP01) {
		t.Errorf("challenges %v, want HTTP-01 (and DNS-01) without TLS-ALPN-01", o.Challenges)
	}
	// Tests that give their own listeners keep them.
	s = New(Options{State: state.Dir(t.TempDir()), ACMEHTTPAddr: "127.0.0.1:5002", ACMETLSAddr: "127.0.0.1:5001"})
	if o, _ = s.acmeOptions(cfg); o.HTTPAddr != "127.0.0.1:5002" || o.Challenges != nil {
		t.Errorf("explicit listeners: %q %v", o.HTTPAddr, o.Challenges)
	}
}
