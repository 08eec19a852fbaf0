package netconf

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/hearthchat/hearth/netconf/status"
)

// lanAddrs are the box's addresses on the home network: those of the
// interface with the default route, or of every up, non-loopback interface
// when there is none (a network without internet still has a LAN).
func lanAddrs() (iface string, addrs []netip.Addr) {
	iface = defaultRouteIface()
	ifs, err := net.Interfaces()
	if err != nil {
		return iface, nil
	}
	for _, in := range ifs {
		if in.Flags&net.FlagUp == 0 || in.Flags&net.FlagLoopback != 0 {
			continue
		}
		if iface != "" && in.Name != iface {
			continue
		}
		as, _ := in.Addrs()
		for _, a := range as {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ad := p.Addr()
			if ad.IsLinkLocalUnicast() || ad.IsLoopback() {
				continue
			}
			addrs = append(addrs, ad)
		}
	}
	return iface, addrs
}

// defaultRouteIface reads the IPv4 routing table (no netlink library for
// one line of information).
func defaultRouteIface() string {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 2 && fs[1] == "00000000" && fs[0] != "Iface" {
			return fs[0]
		}
	}
	return ""
}

// lanCheck reports the home-network address, and re-checks it when asked
// (DHCP can change it; the other parts re-announce on their own).
func lanCheck(r status.Reporter) status.Check {
	iface, addrs := lanAddrs()
	c := status.Check{ID: "lan", Title: "Home network"}
	if len(addrs) == 0 {
		c.Level = status.Error
		c.Message = "This box has no address on a network."
		c.Action = "Check that the network cable is plugged into your router and that the router is on, then wait a minute."
		r.Set(c)
		return c
	}
	var list []string
	for _, a := range addrs {
		list = append(list, a.String())
	}
	c.Level = status.OK
	c.Message = "This box is on your home network at " + addrs[0].String() + "."
	c.Detail = map[string]string{"interface": iface, "addresses": strings.Join(list, " ")}
	r.Set(c)
	return c
}

// watchLAN re-checks the address every few minutes: cheap, and a changed
// address is what makes a stale status misleading. While there is no
// address (at boot, before DHCP answers) it looks every few seconds, so
// the status does not say "no network" for minutes after the cable is in.
func watchLAN(ctx context.Context, r status.Reporter) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if lanCheck(r).Level == status.OK {
			t.Reset(5 * time.Minute)
		} else {
			t.Reset(5 * time.Second)
		}
	}
}
