package config

// TURN is the calls relay's section (xmppd/turn, advertised to members by
// XEP-0215 in xmppd/mod/extdisco; netconf maps its ports on the router).
//
// There is no secret here: the TURN REST shared secret is made on the box
// from crypto/rand the first time xmppd starts and kept in xmppd's own
// database (store.Secret("turn")). xmppd is both the server that checks
// the credentials and the one that hands them out, so nothing else needs
// it, and this file is read by every Hearth program and copied into
// support bundles: a secret here would travel further than it must. A
// default secret would let anybody who read our source use every box as
// an open relay.
type TURN struct {
	// Enabled runs STUN/TURN on port 3478 (UDP and TCP).
	Enabled bool `json:"enabled"`
	// RelayFirst..RelayLast is the UDP port range relayed calls use. Kept
	// small: each port is one mapping on the home router, and routers have
	// few slots; it also caps how many relayed calls the box carries.
	RelayFirst int `json:"relay_first"`
	RelayLast  int `json:"relay_last"`
	// RelayToLAN lets a member outside relay to phones on the home network
	// (private addresses). The box itself and the router are never
	// relayed to, whatever this says.
	RelayToLAN bool `json:"relay_to_lan"`
}

// DefaultTURN is the calls section of a fresh box.
func DefaultTURN() TURN {
	return TURN{Enabled: true, RelayFirst: 49152, RelayLast: 49161, RelayToLAN: true}
}

// RelayPorts returns the configured relay range, or the default range
// when the section is missing or the range is unusable.
func (t TURN) RelayPorts() (first, last int) {
	if t.RelayFirst < 1024 || t.RelayLast > 65535 || t.RelayLast < t.RelayFirst || t.RelayLast-t.RelayFirst > 200 {
		d := DefaultTURN()
		return d.RelayFirst, d.RelayLast
	}
	return t.RelayFirst, t.RelayLast
}
