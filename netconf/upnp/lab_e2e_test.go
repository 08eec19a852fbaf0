//go:build e2e

package upnp

// The test network, built fresh for each test from namespaces named
// hnc-up<N>-…:
//
//	lan (our client, 192.168.77.2) ── router (miniupnpd; 192.168.77.1 | WAN) ── wan (a peer)
//
// The WAN side uses 11.250.42.0/24 by default: Debian 12's miniupnpd 2.3.1
// refuses to forward when its WAN address is private or reserved, and that
// includes the documentation ranges (203.0.113.0/24, 198.51.100.0/24). The
// address exists only on the veth pair between the router and wan
// namespaces, which have no other link, so no packet can leave them.
//
// Our client runs as a child process inside the lan namespace (the test
// binary again, see TestMain), because a Go program's sockets follow the
// namespace of whichever thread opens them. It writes the status report
// to a file the test reads.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
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
	"github.com/hearthchat/hearth/netconf/status"
)

const (
	nsPrefix  = "hnc-up"
	lanAddr   = "192.168.77.2"
	routerLAN = "192.168.77.1"
	wanRouter = "11.250.42.1"
	wanPeer   = "11.250.42.2"
	helperEnv = "HNC_UPNP_HELPER"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
	case "client":
		os.Exit(helperClient())
	case "deleteall":
		os.Exit(helperDeleteAll())
	case "dial":
		os.Exit(helperDial())
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
	if netns.Available() == nil {
		// What a crashed earlier run left: namespaces and the daemons in them.
		if err := netns.Sweep(nsPrefix); err != nil {
			fmt.Fprintln(os.Stderr, "sweep:", err)
		}
	}
	os.Exit(m.Run())
}

// helperOpts travel to the child in the environment.
type helperOpts struct {
	Ports      []Port
	Lease      time.Duration
	RetryMin   time.Duration
	RetryMax   time.Duration
	StatusFile string
	LANAddr    string // Options.LANAddr; empty: learned from the router's answer
	Listen     []int  // TCP ports to answer on ("hearth <port>\n")
}

func (o helperOpts) toClient(rep status.Reporter) Options {
	lan, _ := netip.ParseAddr(o.LANAddr)
	return Options{Ports: o.Ports, Lease: o.Lease, Reporter: rep, LANAddr: lan,
		SearchWait: time.Second, Timeout: 2 * time.Second,
		RetryMin: o.RetryMin, RetryMax: o.RetryMax}
}

func readHelperOpts() (helperOpts, error) {
	var o helperOpts
	err := json.Unmarshal([]byte(os.Getenv("HNC_UPNP_OPTS")), &o)
	return o, err
}

func helperClient() int {
	o, err := readHelperOpts()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for _, p := range o.Listen {
		ln, err := net.Listen("tcp4", ":"+strconv.Itoa(p))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "hearth %d\n", p)
				c.Close()
			}
		}()
	}
	var b status.Board
	var wmu sync.Mutex
	write := func(r status.Report) {
		wmu.Lock()
		defer wmu.Unlock()
		j, _ := json.Marshal(r)
		tmp := o.StatusFile + ".tmp"
		if os.WriteFile(tmp, j, 0o644) == nil {
			os.Rename(tmp, o.StatusFile)
		}
	}
	b.OnChange(write)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts := o.toClient(&b)
	opts.OnExternal = func(a []netip.Addr) { fmt.Fprintln(os.Stderr, "helper: external", a) }
	err = New(opts).Run(ctx)
	write(b.Report())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func helperDeleteAll() int {
	o, err := readHelperOpts()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := New(o.toClient(nil)).DeleteAll(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func helperDial() int {
	c, err := net.DialTimeout("tcp4", os.Getenv("HNC_UPNP_DIAL"), 3*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	var buf [64]byte
	n, _ := c.Read(buf[:])
	os.Stdout.Write(buf[:n])
	return 0
}

// lab is one test network.
type lab struct {
	t             *testing.T
	lan, rtr, wan *netns.NS
	dir           string
	router        *exec.Cmd
	routerDone    chan struct{}
	routerLog     *syncBuffer
	descURL       string // the running router's description
}

var labN atomic.Int32

func newLab(t *testing.T, wanAddr string) *lab {
	t.Helper()
	netns.Skip(t)
	for _, exe := range []string{"/usr/sbin/miniupnpd", "upnpc", "nft"} {
		if _, err := exec.LookPath(exe); err != nil {
			t.Fatalf("%s is missing (make test-deps installs miniupnpd, miniupnpc, nftables): %v", exe, err)
		}
	}
	n := labN.Add(1)
	name := func(role string) string { return fmt.Sprintf("%s%d-%s", nsPrefix, n, role) }
	l := &lab{t: t, dir: t.TempDir()}
	l.lan = netns.New(t, name("lan"))
	l.rtr = netns.New(t, name("rtr"))
	l.wan = netns.New(t, name("wan"))
	netns.Link(t, l.lan, "l0", lanAddr+"/24", l.rtr, "r0", routerLAN+"/24")
	netns.Link(t, l.rtr, "r1", wanAddr, l.wan, "w0", "")
	// The wan peer sits next to the router's WAN address.
	p := netip.MustParsePrefix(wanAddr)
	peer := p.Addr().Next()
	if err := l.wan.SetAddr("w0", netip.PrefixFrom(peer, p.Bits()).String()); err != nil {
		t.Fatal(err)
	}
	if err := l.lan.DefaultRoute(routerLAN); err != nil {
		t.Fatal(err)
	}
	if err := l.rtr.Forwarding(); err != nil {
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
	f := filepath.Join(l.dir, "fw.nft")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	l.rtr.MustRun(t, "nft", "-f", f)
	t.Cleanup(l.stopRouter)
	return l
}

// startRouter runs miniupnpd in the router namespace on the given HTTP
// port, with extra config lines (permission rules go before the lab's
// own; "secure_mode=no" replaces the default yes).
func (l *lab) startRouter(httpPort int, rules ...string) {
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
	f := filepath.Join(l.dir, "miniupnpd.conf")
	if err := os.WriteFile(f, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		l.t.Fatal(err)
	}
	l.routerLog = &syncBuffer{}
	cmd := l.rtr.Command("/usr/sbin/miniupnpd", "-d", "-f", f, "-P", filepath.Join(l.dir, "miniupnpd.pid"))
	cmd.Stdout, cmd.Stderr = l.routerLog, l.routerLog
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	l.router, l.routerDone, l.descURL = cmd, done, ""
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
	l.descURL = "http://" + routerLAN + ":" + m[1] + "/rootDesc.xml"
}

func (l *lab) stopRouter() {
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
	l.router, l.descURL = nil, ""
}

// list is `upnpc -l` run in the lan namespace: what the router holds.
func (l *lab) list() string {
	l.t.Helper()
	out, err := l.lan.Run("upnpc", l.upnpcArgs("-l")...)
	if err != nil && !strings.Contains(out, "GetGenericPortMappingEntry") {
		l.t.Fatalf("upnpc -l: %v", err)
	}
	return out
}

// upnpcArgs points upnpc straight at the running router's description,
// skipping its two-second search.
func (l *lab) upnpcArgs(args ...string) []string {
	if l.descURL == "" {
		return args
	}
	return append([]string{"-u", l.descURL}, args...)
}

// upnpc runs upnpc in the lan namespace (as the box's neighbours would).
func (l *lab) upnpc(args ...string) string {
	l.t.Helper()
	return l.lan.MustRun(l.t, "upnpc", l.upnpcArgs(args...)...)
}

// listed reports whether `upnpc -l` shows proto port → our address.
func listed(out, proto string, port int) bool {
	want := fmt.Sprintf("%s %5d->%s:%d", strings.ToUpper(proto), port, lanAddr, port)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(strings.Join(strings.Fields(line), " "), strings.Join(strings.Fields(want), " ")) {
			return true
		}
	}
	return false
}

// dial connects from the wan namespace to addr and returns what it read.
func (l *lab) dial(addr string) (string, error) {
	exe, _ := os.Executable()
	cmd := l.wan.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=dial", "HNC_UPNP_DIAL="+addr)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), nil
}

// client is our Client running in the lan namespace.
type client struct {
	t      *testing.T
	cmd    *exec.Cmd
	done   chan struct{}
	status string
	log    *syncBuffer
	exit   error
}

func (l *lab) startClient(o helperOpts) *client {
	l.t.Helper()
	o.StatusFile = filepath.Join(l.dir, fmt.Sprintf("status-%d.json", time.Now().UnixNano()))
	j, _ := json.Marshal(o)
	exe, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	c := &client{t: l.t, status: o.StatusFile, log: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = l.lan.Command(exe)
	c.cmd.Env = append(os.Environ(), helperEnv+"=client", "HNC_UPNP_OPTS="+string(j))
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { c.exit = c.cmd.Wait(); close(c.done) }()
	l.t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
		if l.t.Failed() {
			l.t.Logf("client log:\n%s", c.log)
		}
	})
	return c
}

func (c *client) report() status.Report {
	var r status.Report
	b, err := os.ReadFile(c.status)
	if err == nil {
		json.Unmarshal(b, &r)
	}
	return r
}

// wait polls the report until ok holds.
func (c *client) wait(what string, timeout time.Duration, ok func(status.Report) bool) status.Report {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := c.report()
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			j, _ := r.JSON()
			c.t.Fatalf("timed out after %v waiting for %s; report:\n%s", timeout, what, j)
		}
		select {
		case <-c.done:
			j, _ := c.report().JSON()
			c.t.Fatalf("client exited (%v) while waiting for %s; report:\n%s", c.exit, what, j)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the client as netconf's shutdown would (SIGTERM → ctx ends).
func (c *client) stop(timeout time.Duration) {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if c.exit != nil {
			c.t.Fatalf("client exited with %v", c.exit)
		}
	case <-time.After(timeout):
		c.t.Fatalf("client did not stop within %v", timeout)
	}
}

func level(r status.Report, id string) status.Level {
	c, _ := r.Get(id)
	return c.Level
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func mustExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
