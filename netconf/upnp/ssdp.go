package upnp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// SSDP search, done here rather than through goupnp's httpu client: that
// client drops the address an answer came from, and we need it to refuse
// descriptions hosted anywhere but on the device that answered.

var ssdpGroup = netip.AddrPortFrom(netip.AddrFrom4([4]byte{239, 255, 255, 250}), 1900)

const (
	maxSSDPPacket = 2048 // an answer is a few hundred bytes; more is junk
	maxAnswers    = 8    // distinct locations we look at per search
)

// answer is one router that answered our search.
type answer struct {
	from     netip.Addr // the answer's source address
	local    netip.Addr // our address on the interface the answer came in on
	location *url.URL
	st       string
}

// search sends M-SEARCH for each target from every local IPv4 address in
// locals and collects the answers until wait has passed. Answers whose
// LOCATION is not on the answering host are dropped.
func search(ctx context.Context, locals []netip.Addr, targets []string, wait time.Duration) ([]answer, []string, error) {
	if len(locals) == 0 {
		return nil, nil, errors.New("no IPv4 address on any network interface")
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	type result struct {
		answers []answer
		dropped []string
		err     error
	}
	ch := make(chan result, len(locals))
	for _, l := range locals {
		go func() {
			a, d, err := searchFrom(ctx, l, targets, wait)
			ch <- result{a, d, err}
		}()
	}
	var all []answer
	var dropped []string
	var errs []error
	seen := map[string]bool{}
	for range locals {
		r := <-ch
		if r.err != nil {
			errs = append(errs, r.err)
		}
		dropped = append(dropped, r.dropped...)
		for _, a := range r.answers {
			k := a.location.String()
			if !seen[k] && len(all) < maxAnswers {
				seen[k] = true
				all = append(all, a)
			}
		}
	}
	if len(all) == 0 && len(errs) == len(locals) {
		return nil, dropped, errors.Join(errs...)
	}
	return all, dropped, nil
}

func searchFrom(ctx context.Context, local netip.Addr, targets []string, wait time.Duration) ([]answer, []string, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Send the search out of the interface that holds local,
			// whatever the routing table says about multicast.
			serr = syscall.SetsockoptInet4Addr(int(fd), syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, local.As4())
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", netip.AddrPortFrom(local, 0).String())
	if err != nil {
		return nil, nil, fmt.Errorf("ssdp socket on %s: %w", local, err)
	}
	conn := pc.(*net.UDPConn)
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	go func() { <-ctx.Done(); conn.SetDeadline(time.Now()) }()

	mx := max(1, int(wait/time.Second)-1)
	// Send every search twice: UDP on a busy Wi-Fi loses packets.
	for round := 0; round < 2; round++ {
		for _, st := range targets {
			msg := fmt.Sprintf("M-SEARCH * HTTP/1.1\r\nHOST: %s\r\nMAN: \"ssdp:discover\"\r\nMX: %d\r\nST: %s\r\n\r\n", ssdpGroup, mx, st)
			if _, err := conn.WriteToUDPAddrPort([]byte(msg), ssdpGroup); err != nil {
				return nil, nil, fmt.Errorf("ssdp search from %s: %w", local, err)
			}
		}
		if round == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}

	var answers []answer
	var dropped []string
	buf := make([]byte, maxSSDPPacket+1)
	for len(answers) < 4*maxAnswers {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break // deadline: the search is over
		}
		if n > maxSSDPPacket {
			continue
		}
		a, err := parseAnswer(buf[:n], from.Addr().Unmap(), targets)
		if err != nil {
			if len(dropped) < 4 {
				dropped = append(dropped, err.Error())
			}
			continue
		}
		a.local = local
		answers = append(answers, a)
	}
	return answers, dropped, nil
}

// parseAnswer checks one SSDP answer. Its LOCATION must be plain http on
// an address literal equal to the sender's: a device on the LAN must not
// be able to send us to fetch from somewhere else.
func parseAnswer(pkt []byte, from netip.Addr, targets []string) (answer, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(pkt)), nil)
	if err != nil {
		return answer{}, fmt.Errorf("answer from %s unreadable", from)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return answer{}, fmt.Errorf("answer from %s: status %d", from, resp.StatusCode)
	}
	st := resp.Header.Get("ST")
	wanted := false
	for _, t := range targets {
		wanted = wanted || strings.EqualFold(st, t)
	}
	if !wanted {
		return answer{}, fmt.Errorf("answer from %s for %q, not searched for", from, clip(st, 80))
	}
	loc, err := checkLocation(resp.Header.Get("Location"), from)
	if err != nil {
		return answer{}, fmt.Errorf("answer from %s: %w", from, err)
	}
	return answer{from: from, location: loc, st: st}, nil
}

// checkLocation parses raw and requires it to be an http URL on host.
func checkLocation(raw string, host netip.Addr) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil {
		return nil, fmt.Errorf("location %q is not a plain http URL", clip(raw, 120))
	}
	h, err := netip.ParseAddr(u.Hostname())
	if err != nil || h.Unmap() != host {
		return nil, fmt.Errorf("location %q is not on the answering device %s", clip(raw, 120), host)
	}
	return u, nil
}

// localIPv4 lists the IPv4 addresses of interfaces that are up, not
// loopback, and can multicast: where a home router may be found.
func localIPv4() ([]netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagMulticast == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap().Is4() && !ip.Unmap().IsLinkLocalUnicast() {
					out = append(out, ip.Unmap())
				}
			}
		}
	}
	return out, nil
}

// clip shortens text from the network before it goes into a status or a
// log, and keeps only printable characters.
func clip(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= n {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}
