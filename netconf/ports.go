package netconf

import (
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/upnp"
)

// Ports are the appliance's public services. Port mappings, DNS records
// and the onion service are all computed from this one list, so adding a
// service here is enough for it to be reachable.
type Ports struct {
	C2S, C2STLS, S2S int
	HTTP, HTTPS      int
	TURN             int // UDP and TCP
	// The TURN relay range is the config's (config.TURN.RelayPorts): xmppd
	// relays from the same ports that are mapped here.
}

// DefaultPorts are the standard ports.
func DefaultPorts() Ports {
	return Ports{C2S: 5222, C2STLS: 5223, S2S: 5269, HTTP: 80, HTTPS: 443,
		TURN: 3478}
}

// Mapping is one port to forward from the router: the type the router
// client takes, so the list goes to it as it is.
type Mapping = upnp.Port

// Mappings are exactly the ports the enabled services need: chat always;
// the web ports only when a certificate is wanted (the CA checks them);
// federation and TURN when those services run. Both are read from cfg:
// before, the caller passed s2s=false always (xmppd had no s2s), so other
// servers could not reach 5269 once xmppd federated.
func (p Ports) Mappings(cfg *config.Config) []Mapping {
	m := []Mapping{
		{Proto: "tcp", Port: p.C2S, Description: "Hearth chat"},
		{Proto: "tcp", Port: p.C2STLS, Description: "Hearth chat (TLS)"},
	}
	if Federates(cfg) {
		m = append(m, Mapping{Proto: "tcp", Port: p.S2S, Description: "Hearth federation"})
	}
	if cfg.Net.ACME.Enabled {
		m = append(m, Mapping{Proto: "tcp", Port: p.HTTP, Description: "Hearth web"}, Mapping{Proto: "tcp", Port: p.HTTPS, Description: "Hearth web (TLS)"})
	}
	if cfg.TURN.Enabled {
		m = append(m, Mapping{Proto: "udp", Port: p.TURN, Description: "Hearth calls"}, Mapping{Proto: "tcp", Port: p.TURN, Description: "Hearth calls"})
		first, last := cfg.TURN.RelayPorts()
		for port := first; port <= last; port++ {
			m = append(m, Mapping{Proto: "udp", Port: port, Description: "Hearth calls relay"})
		}
	}
	return m
}

// Federates reports whether xmppd talks to other servers under cfg: on by
// default (xmppd/s2s listens on 5269 on the box), off when the config's
// federation section says so. The port mapping, the _xmpp-server records
// and the federation self-test all follow it.
func Federates(cfg *config.Config) bool { return !cfg.Federation.Off }
