// Package routerlab builds a home network for tests out of network
// namespaces, with Debian's miniupnpd as the router:
//
//	lan (the box, 192.168.77.2) ── router (miniupnpd; 192.168.77.1 | WAN) ── wan (a peer)
//
// The WAN side takes the address the test gives. Debian 12's miniupnpd
// 2.3.1 refuses to forward when its WAN address is private or reserved,
// which includes the documentation ranges, so tests use 11.250.42.0/24:
// it exists only on the veth pair between the router and wan namespaces,
// which have no other link, so no packet can leave them.
//
// A Go program's sockets follow the namespace of the thread that opens
// them, so code under test runs as a child process in Lab.LAN.
package routerlab

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/netconf/internal/netns"
)

// Addresses on the lab's home network.
const (
	LANAddr   = "192.168.77.2"
	RouterLAN = "192.168.77.1"
)

// Lab is one test network.
type Lab struct {
	t                testing.TB
	LAN, Router, WAN *netns.NS
	// Dir is a scratch directory removed with the test.
	Dir string
	// DescURL is the running router's description ("" when stopped).
	DescURL string

	router     *exec.Cmd
	routerDone chan struct{}
	routerLog  *SyncBuffer
}

var labN atomic.Int32

// New builds the namespaces (named prefix<N>-lan, -rtr, -wan) and the
// router's firewall; StartRouter starts miniupnpd. wanAddr is the router's
// WAN address with its prefix ("11.250.42.1/24"); the wan peer takes the
// next address. Skips when namespaces cannot be made (not root; fails
// under CI).
func New(t testing.TB, prefix, wanAddr string) *Lab {
	t.Helper()
	netns.Need(t)
	for _, exe := range []string{"/usr/sbin/miniupnpd", "upnpc", "nft"} {
		if _, err := exec.LookPath(exe); err != nil {
			t.Fatalf("%s is missing (make test-deps installs miniupnpd, miniupnpc, nftables): %v", exe, err)
		}
	}
	n := labN.Add(1)
	name := func(role string) string { return fmt.Sprintf("%s%d-%s", prefix, n, role) }
	l := &Lab{t: t, Dir: t.TempDir()}
	l.LAN = netns.New(t, name("lan"))
	l.Router = netns.New(t, name("rtr"))
	l.WAN = netns.New(t, name("wan"))
	netns.Link(t, l.LAN, "l0", LANAddr+"/24", l.Router, "r0", RouterLAN+"/24")
	netns.Link(t, l.Router, "r1", wanAddr, l.WAN, "w0", "")
	p := netip.MustParsePrefix(wanAddr)
	peer := p.Addr().Next()
	if err := l.WAN.SetAddr("w0", netip.PrefixFrom(peer, p.Bits()).String()); err != nil {
		t.Fatal(err)
	}
	if err := l.LAN.DefaultRoute(RouterLAN); err != nil {
		t.Fatal(err)
	}
	if err := l.Router.Forwarding(); err != nil {
		t.Fatal(err)
	}
	// The tables and chains miniupnpd's nftables backend fills (its
	// defaults: table inet "filter", chains "miniupnpd",
	// "prerouting_miniupnpd", "postrouting_miniupnpd"). Debian's init
	// script would make them; we do not run it.
	rules := `table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "r0" accept
    jump miniupnpd
  }
  chain miniupnpd { }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
  }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
`
	f := filepath.Join(l.Dir, "fw.nft")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	l.Router.MustRun(t, "nft", "-f", f)
	t.Cleanup(l.StopRouter)
	return l
}

// StartRouter runs miniupnpd in the router namespace on the given HTTP
// port (0: any), with extra config lines (permission rules go before the
// lab's own; "secure_mode=no" replaces the default yes).
func (l *Lab) StartRouter(httpPort int, rules ...string) {
	l.t.Helper()
	conf := []string{
		"ext_ifname=r1",
		"listening_ip=r0",
		"http_port=" + strconv.Itoa(httpPort),
		"enable_natpmp=no",
		"ipv6_disable=yes",
		"system_uptime=no",
		"notify_interval=60",
		"uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b",
	}
	secure := "secure_mode=yes"
	for _, r := range rules {
		if strings.HasPrefix(r, "secure_mode=") {
			secure = r
		}
	}
	conf = append(conf, secure)
	for _, r := range rules {
		if !strings.HasPrefix(r, "secure_mode=") {
			conf = append(conf, r)
		}
	}
	conf = append(conf, "allow 1024-65535 192.168.77.0/24 1024-65535", "deny 0-65535 0.0.0.0/0 0-65535")
	f := filepath.Join(l.Dir, "miniupnpd.conf")
	if err := os.WriteFile(f, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.routerLog = &SyncBuffer{}
	cmd := l.Router.Command("/usr/sbin/miniupnpd", "-d", "-f", f, "-P", filepath.Join(l.Dir, "miniupnpd.pid"))
	cmd.Stdout, cmd.Stderr = l.routerLog, l.routerLog
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	l.router, l.routerDone, l.DescURL = cmd, done, ""
	// Ready when its HTTP port answers.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.routerLog.String(), "HTTP listening on port") {
		select {
		case <-done:
			l.t.Fatalf("miniupnpd exited:\n%s", l.routerLog)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("miniupnpd did not start:\n%s", l.routerLog)
		}
	}
	m := regexp.MustCompile(`HTTP listening on port (\d+)`).FindStringSubmatch(l.routerLog.String())
	if m == nil {
		l.t.Fatalf("no HTTP port in miniupnpd's log:\n%s", l.routerLog)
	}
	l.DescURL = "http://" + RouterLAN + ":" + m[1] + "/rootDesc.xml"
}

// StopRouter stops miniupnpd (as a router reboot would); the firewall
// keeps what it held.
func (l *Lab) StopRouter() {
	if l.router == nil {
		return
	}
	l.router.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.routerDone:
	case <-time.After(5 * time.Second):
		l.router.Process.Kill()
		<-l.routerDone
	}
	if l.t.Failed() {
		l.t.Logf("miniupnpd log:\n%s", l.routerLog)
	}
	l.router, l.DescURL = nil, ""
}

// List is `upnpc -l` run in the lan namespace: what the router holds.
func (l *Lab) List() string {
	l.t.Helper()
	out, err := l.LAN.Run("upnpc", l.UpnpcArgs("-l")...)
	if err != nil && !strings.Contains(out, "GetGenericPortMappingEntry") {
		l.t.Fatalf("upnpc -l: %v", err)
	}
	return out
}

// UpnpcArgs points upnpc straight at the running router's description,
// skipping its two-second search.
func (l *Lab) UpnpcArgs(args ...string) []string {
	if l.DescURL == "" {
		return args
	}
	return append([]string{"-u", l.DescURL}, args...)
}

// Upnpc runs upnpc in the lan namespace (as the box's neighbours would).
func (l *Lab) Upnpc(args ...string) string {
	l.t.Helper()
	return l.LAN.MustRun(l.t, "upnpc", l.UpnpcArgs(args...)...)
}

// Listed reports whether `upnpc -l` output shows proto port → the box.
func Listed(out, proto string, port int) bool {
	want := strings.Join(strings.Fields(fmt.Sprintf("%s %5d->%s:%d", strings.ToUpper(proto), port, LANAddr, port)), " ")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(strings.Join(strings.Fields(line), " "), want) {
			return true
		}
	}
	return false
}

// SyncBuffer collects a child's output from several goroutines.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
