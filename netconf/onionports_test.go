package netconf

import (
	"slices"
	"testing"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/netconf/onion"
)

// With federation on, the onion service also carries 5269 to xmppd's
// onion s2s socket, and tor opens the SOCKS socket xmppd reaches .onion
// domains through; with it off, neither.
func TestOnionOptionsFollowFederation(t *testing.T) {
	dir := state.Dir(t.TempDir())
	s := New(Options{State: dir, Local: true})
	c2s := onion.Port{Virtual: 5222, Target: "unix:" + dir.OnionC2S()}
	s2s := onion.Port{Virtual: 5269, Target: "unix:" + dir.OnionS2S()}

	cfg := config.Default()
	o := s.onionOptions(cfg)
	if !slices.Equal(o.Ports, []onion.Port{c2s, s2s}) || o.SocksSocket != dir.TorSocks() {
		t.Errorf("federation on: ports %v, SOCKS socket %q", o.Ports, o.SocksSocket)
	}
	if o.DataDir != dir.Tor() {
		t.Errorf("tor's directory %q, want %q (the SOCKS socket must be inside it)", o.DataDir, dir.Tor())
	}
	if _, err := onion.New(o); err != nil {
		t.Errorf("the onion service refuses netconf's options: %v", err)
	}

	cfg.Federation.Off = true
	o = s.onionOptions(cfg)
	if !slices.Equal(o.Ports, []onion.Port{c2s}) || o.SocksSocket != "" {
		t.Errorf("federation off: ports %v, SOCKS socket %q", o.Ports, o.SocksSocket)
	}
}
