package mdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

const mdnsPort = 5353

var (
	group4 = netip.MustParseAddr("224.0.0.251")
	group6 = netip.MustParseAddr("ff02::fb")
)

// packet is one DNS message received on a LAN interface.
type packet struct {
	msg       *dns.Msg
	src       netip.AddrPort
	ifindex   int
	multicast bool // sent to the mDNS group, not to us directly
}

// conn is the IPv4 and IPv6 sockets on port 5353. Each is bound to the
// wildcard address (not the group address) so that unicast replies to our
// probes and direct unicast queries reach us too.
type conn struct {
	v4 *ipv4.PacketConn
	v6 *ipv6.PacketConn
	// interface indexes whose group we are in, per family
	joined4, joined6 map[int]bool
}

func reuseAddr(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		// Another mDNS stack on the same box (a test's second responder,
		// a debugging avahi) may share the port; the kernel hands
		// multicast to every socket.
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// listen opens the sockets. One family failing is fine (IPv6 may be off);
// both failing is an error.
func listen() (*conn, error) {
	lc := net.ListenConfig{Control: reuseAddr}
	c := &conn{joined4: map[int]bool{}, joined6: map[int]bool{}}
	var errs []error
	if pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", mdnsPort)); err != nil {
		errs = append(errs, fmt.Errorf("udp4: %w", err))
	} else {
		p := ipv4.NewPacketConn(pc)
		p.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true)
		p.SetMulticastTTL(255)
		p.SetTTL(255)
		// Hearing our own announcements back would only have to be
		// filtered out again.
		p.SetMulticastLoopback(false)
		c.v4 = p
	}
	if pc, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", mdnsPort)); err != nil {
		errs = append(errs, fmt.Errorf("udp6: %w", err))
	} else {
		p := ipv6.NewPacketConn(pc)
		p.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true)
		p.SetMulticastHopLimit(255)
		p.SetHopLimit(255)
		p.SetMulticastLoopback(false)
		c.v6 = p
	}
	if c.v4 == nil && c.v6 == nil {
		return nil, fmt.Errorf("mdns: open port %d: %w", mdnsPort, errors.Join(errs...))
	}
	return c, nil
}

// join makes sure we are in the mDNS group of each family on every
// interface in ifs that has an address of that family (an interface may
// gain its IPv4 address later), and leaves the groups on interfaces no
// longer listed. It fails only when no interface could be joined at all.
func (c *conn) join(ifs []lanIface) error {
	want4, want6 := map[int]bool{}, map[int]bool{}
	var errs []error
	for _, li := range ifs {
		ifi, err := net.InterfaceByIndex(li.Index)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c.v4 != nil && li.has4() {
			want4[li.Index] = true
			if !c.joined4[li.Index] {
				if err := c.v4.JoinGroup(ifi, &net.UDPAddr{IP: group4.AsSlice()}); err != nil {
					errs = append(errs, fmt.Errorf("%s ipv4: %w", li.Name, err))
					delete(want4, li.Index)
				}
			}
		}
		if c.v6 != nil && li.has6() {
			want6[li.Index] = true
			if !c.joined6[li.Index] {
				if err := c.v6.JoinGroup(ifi, &net.UDPAddr{IP: group6.AsSlice()}); err != nil {
					errs = append(errs, fmt.Errorf("%s ipv6: %w", li.Name, err))
					delete(want6, li.Index)
				}
			}
		}
	}
	for idx := range c.joined4 {
		if ifi, err := net.InterfaceByIndex(idx); err == nil && !want4[idx] {
			c.v4.LeaveGroup(ifi, &net.UDPAddr{IP: group4.AsSlice()})
		}
	}
	for idx := range c.joined6 {
		if ifi, err := net.InterfaceByIndex(idx); err == nil && !want6[idx] {
			c.v6.LeaveGroup(ifi, &net.UDPAddr{IP: group6.AsSlice()})
		}
	}
	c.joined4, c.joined6 = want4, want6
	if len(want4)+len(want6) == 0 && len(ifs) > 0 {
		return fmt.Errorf("mdns: join multicast group: %w", errors.Join(errs...))
	}
	return nil
}

// read delivers packets from both sockets to out until the sockets are
// closed or ctx ends.
func (c *conn) read(ctx context.Context, out chan<- packet) {
	deliver := func(p packet) bool {
		select {
		case out <- p:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// A read error other than a closed socket is unexpected (UDP has no
	// connection to lose); pause briefly so it can never spin.
	pause := func(err error) bool {
		if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
			return false
		}
		time.Sleep(100 * time.Millisecond)
		return true
	}
	// loop reads one socket; recv hides the IPv4/IPv6 control-message
	// types (dst is nil when the kernel gave no control message).
	loop := func(recv func(b []byte) (n int, dst net.IP, ifindex int, from net.Addr, err error)) {
		buf := make([]byte, 9000)
		for {
			n, dst, ifindex, from, err := recv(buf)
			if err != nil {
				if pause(err) {
					continue
				}
				return
			}
			m := new(dns.Msg)
			ua, _ := from.(*net.UDPAddr)
			if dst == nil || ua == nil || m.Unpack(buf[:n]) != nil {
				continue
			}
			d, _ := netip.AddrFromSlice(dst)
			if !deliver(packet{msg: m, src: unmap(ua.AddrPort()), ifindex: ifindex, multicast: d.IsMulticast()}) {
				return
			}
		}
	}
	if c.v4 != nil {
		go loop(func(b []byte) (int, net.IP, int, net.Addr, error) {
			n, cm, from, err := c.v4.ReadFrom(b)
			if cm == nil {
				return n, nil, 0, from, err
			}
			return n, cm.Dst.To4(), cm.IfIndex, from, err
		})
	}
	if c.v6 != nil {
		go loop(func(b []byte) (int, net.IP, int, net.Addr, error) {
			n, cm, from, err := c.v6.ReadFrom(b)
			if cm == nil {
				return n, nil, 0, from, err
			}
			return n, cm.Dst, cm.IfIndex, from, err
		})
	}
}

// family selects the IP versions a multicast goes out over.
type family int

const (
	both family = iota
	only4
	only6
)

// multicast sends m to the mDNS group on ifc, over each family the
// interface has addresses in.
func (c *conn) multicast(m *dns.Msg, ifc lanIface) error { return c.multicastOver(m, ifc, both) }

// multicastOver sends m over the chosen families only: an answer goes
// back the way its query came.
func (c *conn) multicastOver(m *dns.Msg, ifc lanIface, f family) error {
	b, err := m.Pack()
	if err != nil {
		return fmt.Errorf("mdns: pack: %w", err)
	}
	var errs []error
	if c.v4 != nil && ifc.has4() && f != only6 {
		_, err := c.v4.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifc.Index},
			&net.UDPAddr{IP: group4.AsSlice(), Port: mdnsPort})
		errs = append(errs, err)
	}
	if c.v6 != nil && ifc.has6() && f != only4 {
		_, err := c.v6.WriteTo(b, &ipv6.ControlMessage{IfIndex: ifc.Index},
			&net.UDPAddr{IP: group6.AsSlice(), Port: mdnsPort})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unicast sends m to one asker, out of the interface its query came in on.
func (c *conn) unicast(m *dns.Msg, to netip.AddrPort, ifindex int) error {
	b, err := m.Pack()
	if err != nil {
		return fmt.Errorf("mdns: pack: %w", err)
	}
	a := to.Addr()
	ua := &net.UDPAddr{IP: a.Unmap().AsSlice(), Port: int(to.Port()), Zone: a.Zone()}
	if a.Unmap().Is4() {
		if c.v4 == nil {
			return errors.New("mdns: no IPv4 socket")
		}
		_, err = c.v4.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifindex}, ua)
		return err
	}
	if c.v6 == nil {
		return errors.New("mdns: no IPv6 socket")
	}
	_, err = c.v6.WriteTo(b, &ipv6.ControlMessage{IfIndex: ifindex}, ua)
	return err
}

func (c *conn) close() {
	if c.v4 != nil {
		c.v4.Close()
	}
	if c.v6 != nil {
		c.v6.Close()
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
