package mdns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// lanIface is one interface we answer on, with the addresses it had when
// last looked at.
type lanIface struct {
	Index int
	Name  string
	Addrs []netip.Addr   // IPv4 first, then IPv6; sorted within each family
	Nets  []netip.Prefix // the on-link prefixes, for legacy-query source checks
}

func (i lanIface) has4() bool { return slices.ContainsFunc(i.Addrs, netip.Addr.Is4) }
func (i lanIface) has6() bool { return slices.ContainsFunc(i.Addrs, netip.Addr.Is6) }

// onLink reports whether a is a neighbour on this interface: RFC 6762 §11
// has responders ignore unicast queries from off-link senders, so a
// forwarded query from the internet can never reach hearth.local.
func (i lanIface) onLink(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if a.Is6() && a.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range i.Nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// lanInterfaces returns the interfaces to answer on: those named, or else
// every interface that is up with carrier, can multicast, is not loopback
// and has an address. A named interface that is missing or down is left out (the
// status says which are in use).
func lanInterfaces(names []string) ([]lanIface, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("mdns: list interfaces: %w", err)
	}
	var out []lanIface
	for _, ifi := range all {
		if len(names) > 0 && !slices.Contains(names, ifi.Name) {
			continue
		}
		// Without carrier (cable out) the interface is left out, so that
		// plugging it back in counts as a change and we probe again.
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagRunning == 0 ||
			ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		li := lanIface{Index: ifi.Index, Name: ifi.Name}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			ones, _ := ipn.Mask.Size()
			li.Addrs = append(li.Addrs, ip)
			li.Nets = append(li.Nets, netip.PrefixFrom(ip, ones).Masked())
		}
		if len(li.Addrs) == 0 {
			continue
		}
		slices.SortFunc(li.Addrs, func(a, b netip.Addr) int {
			if a.Is4() != b.Is4() {
				if a.Is4() {
					return -1
				}
				return 1
			}
			return a.Compare(b)
		})
		out = append(out, li)
	}
	return out, nil
}

// sameIfaces reports whether two snapshots have the same interfaces and
// addresses, i.e. whether nothing needs re-announcing.
func sameIfaces(a, b []lanIface) bool {
	return slices.EqualFunc(a, b, func(x, y lanIface) bool {
		return x.Index == y.Index && x.Name == y.Name && slices.Equal(x.Addrs, y.Addrs)
	})
}

func ifaceNames(ifs []lanIface) string {
	var n []string
	for _, i := range ifs {
		n = append(n, i.Name)
	}
	return strings.Join(n, ", ")
}

func ifaceAddrs(ifs []lanIface) string {
	var n []string
	for _, i := range ifs {
		for _, a := range i.Addrs {
			if a.Is6() && a.IsLinkLocalUnicast() {
				n = append(n, a.String()+"%"+i.Name)
			} else {
				n = append(n, a.String())
			}
		}
	}
	return strings.Join(n, ", ")
}

func findIface(ifs []lanIface, index int) (lanIface, bool) {
	for _, i := range ifs {
		if i.Index == index {
			return i, true
		}
	}
	return lanIface{}, false
}

// ours reports whether a is one of this box's addresses on any LAN
// interface.
func ours(ifs []lanIface, a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, i := range ifs {
		if slices.Contains(i.Addrs, a) {
			return true
		}
	}
	return false
}
