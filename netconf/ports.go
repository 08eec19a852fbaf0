package netconf

import "github.com/hearthchat/hearth/appliance/config"

// Ports are the appliance's public services. Port mappings, DNS records
// and the onion service are all computed from this one list, so adding a
// service here is enough for it to be reachable.
type Ports struct {
	C2S, C2STLS, S2S int
	HTTP, HTTPS      int
	TURN             int // UDP and TCP
	// TURNRelay is the UDP range coturn-style relays use; kept small
	// (a home router has few mapping slots).
	TURNRelayFirst, TURNRelayLast int
}

// DefaultPorts are the standard ports.
func DefaultPorts() Ports {
	return Ports{C2S: 5222, C2STLS: 5223, S2S: 5269, HTTP: 80, HTTPS: 443,
		TURN: 3478, TURNRelayFirst: 49152, TURNRelayLast: 49161}
}

// Mapping is one port to forward from the router.
type Mapping struct {
	Proto       string // "tcp" or "udp"
	Port        int
	Description string // shown in the router's own pages
}

// Mappings are exactly the ports the enabled services need: chat always;
// the web ports only when a certificate is wanted (the CA checks them);
// federation and TURN when those services run.
func (p Ports) Mappings(cfg *config.Config, s2s, turn bool) []Mapping {
	m := []Mapping{
		{"tcp", p.C2S, "Hearth chat"},
		{"tcp", p.C2STLS, "Hearth chat (TLS)"},
	}
	if s2s {
		m = append(m, Mapping{"tcp", p.S2S, "Hearth federation"})
	}
	if cfg.Net.ACME.Enabled {
		m = append(m, Mapping{"tcp", p.HTTP, "Hearth web"}, Mapping{"tcp", p.HTTPS, "Hearth web (TLS)"})
	}
	if turn {
		m = append(m, Mapping{"udp", p.TURN, "Hearth calls"}, Mapping{"tcp", p.TURN, "Hearth calls"})
		for port := p.TURNRelayFirst; port > 0 && port <= p.TURNRelayLast; port++ {
			m = append(m, Mapping{"udp", port, "Hearth calls relay"})
		}
	}
	return m
}
