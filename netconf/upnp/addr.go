package upnp

import "net/netip"

// addrKind says what an address the router calls "external" means for
// people outside trying to reach the box.
type addrKind string

const (
	kindPublic  addrKind = "public"  // reachable from the internet
	kindCGNAT   addrKind = "cgnat"   // 100.64.0.0/10: the provider shares one address among homes
	kindPrivate addrKind = "private" // RFC 1918 and friends: another router sits in front
	kindNone    addrKind = "none"    // the router gave no usable address
)

var (
	cgnatNet = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598
	// Addresses that can never be a home's address on the internet.
	// Documentation and benchmark ranges are here too: a router reporting
	// one is misconfigured, and nobody outside could reach it.
	privateNets = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("224.0.0.0/3"), // multicast and class E, and broadcast
		netip.MustParsePrefix("fc00::/7"),
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("::/128"),
		netip.MustParsePrefix("::1/128"),
	}
)

// classify parses the router's answer to GetExternalIPAddress.
func classify(s string) (netip.Addr, addrKind) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.IsValid() || a.IsUnspecified() {
		return netip.Addr{}, kindNone
	}
	a = a.Unmap()
	if a.Zone() != "" {
		return a, kindPrivate
	}
	if cgnatNet.Contains(a) {
		return a, kindCGNAT
	}
	for _, p := range privateNets {
		if p.Contains(a) {
			return a, kindPrivate
		}
	}
	return a, kindPublic
}
