package netconf

import (
	"fmt"
	"testing"

	"github.com/hearthchat/hearth/appliance/config"
)

// TestRouterMapsTURN: with calls on (the config's turn section), the
// router is asked for 3478 over UDP and TCP and exactly the configured
// relay range, the ports xmppd's relay uses; with calls off, none of them.
func TestRouterMapsTURN(t *testing.T) {
	s := &Service{}
	s.opts.Ports = DefaultPorts()
	cfg := config.Default()
	cfg.TURN.RelayFirst, cfg.TURN.RelayLast = 50000, 50002
	got := map[string]bool{}
	for _, m := range s.upnpOptions(cfg).Ports {
		got[fmt.Sprintf("%s/%d", m.Proto, m.Port)] = true
	}
	for _, want := range []string{"udp/3478", "tcp/3478", "udp/50000", "udp/50001", "udp/50002", "tcp/5222"} {
		if !got[want] {
			t.Errorf("calls on: %s not mapped; mappings %v", want, got)
		}
	}
	if got["udp/49999"] || got["udp/50003"] || got["udp/49152"] {
		t.Errorf("calls on: ports outside the relay range mapped: %v", got)
	}
	cfg.TURN.Enabled = false
	for _, m := range s.upnpOptions(cfg).Ports {
		if m.Port == 3478 || m.Port >= 50000 {
			t.Errorf("calls off: %s/%d mapped", m.Proto, m.Port)
		}
	}
}
