package turn

import (
	"net"
	"net/netip"
)

// PeerPolicy decides which peers an allocation may send to (RFC 5766
// permissions). A TURN server on a home box is a door into the home: a
// member's credential (or a stolen one) must not turn it into a way to
// reach the box's own services (the admin API and pages listen on it,
// mDNS answers on 5353, the TURN port itself would loop), the router's
// admin interface and its UPnP/DNS ports, or anything on loopback. So:
//
//   - always refused: loopback, unspecified, multicast, link-local,
//     broadcast, the box's own addresses, the router's address, and the
//     IPv4-mapped IPv6 forms of all of these;
//   - private and shared (CGNAT) ranges only with LAN set (a member away
//     calling a phone at home relays to its home address);
//   - anything else (public unicast) allowed.
//
// Allow lists prefixes that are allowed regardless (tests: a peer on
// 127.0.0.2).
type PeerPolicy struct {
	LAN   bool
	Allow []netip.Prefix
	// Self returns the box's own addresses and the router's; called on
	// every decision, so it must be cheap (the daemon caches it).
	Self func() []netip.Addr
}

// Permit reports whether peer may be relayed to.
func (p *PeerPolicy) Permit(peer netip.Addr) bool {
	peer = peer.Unmap()
	if !peer.IsValid() {
		return false
	}
	for _, a := range p.Allow {
		if a.Contains(peer) {
			return true
		}
	}
	if peer.IsLoopback() || peer.IsUnspecified() || peer.IsMulticast() ||
		peer.IsLinkLocalUnicast() || peer.IsLinkLocalMulticast() || peer.IsInterfaceLocalMulticast() ||
		peer == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || reserved(peer) {
		return false
	}
	if p.Self != nil {
		for _, a := range p.Self() {
			if a.Unmap() == peer {
				return false
			}
		}
	}
	if peer.IsPrivate() || cgnat.Contains(peer) {
		return p.LAN
	}
	return true
}

var (
	cgnat = netip.MustParsePrefix("100.64.0.0/10")
	// 0.0.0.0/8 ("this network", reaches the box itself on Linux) and
	// 240.0.0.0/4 (reserved, includes the broadcast address).
	thisNet  = netip.MustParsePrefix("0.0.0.0/8")
	reserve4 = netip.MustParsePrefix("240.0.0.0/4")
)

func reserved(a netip.Addr) bool { return thisNet.Contains(a) || reserve4.Contains(a) }

// handler adapts Permit to pion's PermissionHandler.
func (p *PeerPolicy) handler(_ net.Addr, peer net.IP) bool {
	a, ok := netip.AddrFromSlice(peer)
	return ok && p.Permit(a)
}
