package web

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// hostCheck is the Host allowlist against DNS rebinding: a page of another
// site whose name suddenly resolves to the box must not be able to read
// the box's pages, so the box answers only to its own names.
type hostCheck struct {
	o Options

	mu      sync.Mutex
	addrs   map[netip.Addr]bool
	fetched time.Time
	// ifaceAddrs is swapped in tests.
	ifaceAddrs func() ([]net.Addr, error)
}

func newHostCheck(o Options) *hostCheck {
	return &hostCheck{o: o, ifaceAddrs: net.InterfaceAddrs}
}

// allowed returns the host name without port (lower case) and whether the
// box answers to it.
func (c *hostCheck) allowed(hostport string) (string, bool) {
	host := strings.ToLower(hostport)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" {
		return "", false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap().WithZone("")
		if c.o.Dev && a.IsLoopback() {
			return host, true
		}
		return host, c.own(a)
	}
	if c.o.Dev && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
		return host, true
	}
	if host == "hearth.local" {
		return host, true
	}
	if c.o.Hosts != nil {
		for _, h := range c.o.Hosts() {
			if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
				return host, true
			}
		}
	}
	if d := strings.ToLower(c.o.Domain()); d != "" && (host == d || strings.HasSuffix(host, "."+d)) {
		return host, true
	}
	return host, false
}

// own reports whether a is an address of this box's interfaces (looked up
// at most every 10 s: DHCP may change them).
func (c *hostCheck) own(a netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.addrs == nil || time.Since(c.fetched) > 10*time.Second {
		c.addrs = map[netip.Addr]bool{}
		c.fetched = time.Now()
		if as, err := c.ifaceAddrs(); err == nil {
			for _, x := range as {
				if p, err := netip.ParsePrefix(x.String()); err == nil {
					c.addrs[p.Addr().Unmap()] = true
				}
			}
		}
	}
	return c.addrs[a]
}
