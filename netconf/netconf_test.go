package netconf

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/netconf/status"
	"github.com/hearthchat/hearth/xmppd"
)

func startService(t *testing.T, cfg *config.Config, selfAddr string) (*Service, state.Dir) {
	t.Helper()
	return startServiceWith(t, cfg, Options{SelfTestAddr: selfAddr})
}

// startServiceWith is startService with more options (o's State, Local and
// DNSResolver are set here).
func startServiceWith(t *testing.T, cfg *config.Config, o Options) (*Service, state.Dir) {
	t.Helper()
	dir := state.Dir(t.TempDir())
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := config.Save(dir.Config(), cfg); err != nil {
		t.Fatal(err)
	}
	// No DNS traffic leaves the machine: nothing listens on port 9 here.
	o.State, o.Local, o.DNSResolver = dir, true, "127.0.0.1:9"
	s := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	waitFor(t, "the socket", func() bool { _, err := os.Stat(dir.NetconfSocket()); return err == nil })
	return s, dir
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func socketPost(t *testing.T, dir state.Dir, path string) status.Report {
	t.Helper()
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", dir.NetconfSocket())
	}}}
	method := http.MethodPost
	if path == "/status" {
		method = http.MethodGet
	}
	req, _ := http.NewRequest(method, "http://netconf"+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r status.Report
	if resp.StatusCode == http.StatusNoContent {
		return r
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v: %s", path, err, b)
	}
	return r
}

// The self-test talks to a real xmppd (ours, on loopback) the way a phone
// on the internet would, and says in words what failed when it cannot.
func TestSelfTestAgainstRealServer(t *testing.T) {
	d, err := xmppd.Start(xmppd.Options{State: state.Dir(t.TempDir()), Domain: "club.example", C2S: "127.0.0.1:0",
		S2S: xmppd.S2SOptions{Listen: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Domain = "club.example"
	_, dir := startServiceWith(t, cfg, Options{SelfTestAddr: d.C2SAddr.String(), SelfTestS2SAddr: d.S2SAddr().String()})

	r := socketPost(t, dir, "/selftest")
	c, ok := r.Get("selftest")
	if !ok || c.Level != status.OK || !strings.Contains(c.Message, "club.example") {
		t.Fatalf("self-test against a working server: %+v", c)
	}
	// Federation: xmppd's s2s listener answers a server stream.
	if c, ok := r.Get(CheckFederation); !ok || c.Level != status.OK || !strings.Contains(c.Message, "Other servers can reach you on 5269") {
		t.Fatalf("federation self-test against a working server: %+v", c)
	}
	if lan, ok := r.Get("lan"); !ok || lan.Message == "" {
		t.Errorf("no LAN check in %+v", r)
	}
	// The status file follows the report.
	waitFor(t, "the status file", func() bool {
		b, err := os.ReadFile(filepath.Join(dir.Status(), "netconf.json"))
		return err == nil && strings.Contains(string(b), `"selftest"`) && strings.Contains(string(b), `"ok"`)
	})

	// The server goes away: the self-test fails and, UPnP being off, tells
	// the person to let the box set up the router or forward the ports.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	d.Shutdown(ctx)
	cancel()
	r = socketPost(t, dir, "/selftest")
	c, _ = r.Get("selftest")
	if c.Level != status.Error || !strings.Contains(c.Action, "forward TCP ports 5222, 5223 and 5269 to this box") {
		t.Fatalf("self-test with the server down (federation on, so 5269 is among the ports to forward): %+v", c)
	}
	c, _ = r.Get(CheckFederation)
	if c.Level != status.Error || !strings.Contains(c.Message, "Other servers cannot reach club.example on port 5269") ||
		!strings.Contains(c.Action, "forward TCP port 5269") {
		t.Fatalf("federation self-test with the server down: %+v", c)
	}
}

// With the config's federation section off, the federation self-test says
// so (and what to do) instead of probing a port nobody should open.
func TestSelfTestFederationOff(t *testing.T) {
	cfg := config.Default()
	cfg.Domain = "club.example"
	cfg.Federation.Off = true
	_, dir := startServiceWith(t, cfg, Options{SelfTestAddr: "127.0.0.1:9", SelfTestS2SAddr: "127.0.0.1:9"})
	r := socketPost(t, dir, "/selftest")
	c, ok := r.Get(CheckFederation)
	if !ok || c.Level != status.Off || !strings.Contains(c.Message, "Federation is off") {
		t.Fatalf("federation off: %+v", c)
	}
}

// A port that is open but is not our chat server (a web server, say) is
// not reachability.
func TestSelfTestNotAChatServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.NotFoundHandler())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = probeXMPP(ctx, ln.Addr().String(), "club.example", "jabber:client")
	if err == nil || !strings.Contains(err.Error(), "chat server") {
		t.Fatalf("probe of a web server: %v", err)
	}
}

func TestLocalOnlyDomainNeedsNoSelfTest(t *testing.T) {
	_, dir := startService(t, config.Default(), "")
	r := socketPost(t, dir, "/selftest")
	c, _ := r.Get("selftest")
	if c.Level != status.Off || !strings.Contains(c.Message, "only at home") {
		t.Fatalf("hearth.local self-test: %+v", c)
	}
}

// The setup pages save the config and ask for a reload; a broken config is
// reported instead of taking netconf down.
func TestReloadAndBrokenConfig(t *testing.T) {
	s, dir := startService(t, config.Default(), "")
	os.WriteFile(dir.Config(), []byte("{not json"), 0o600)
	socketPost(t, dir, "/status")
	s.Reload()
	waitFor(t, "the config check", func() bool {
		c, ok := s.Report().Get("config")
		return ok && c.Level == status.Error && c.Action != ""
	})
	config.Save(dir.Config(), config.Default())
	s.Reload()
	waitFor(t, "the config check to clear", func() bool { _, ok := s.Report().Get("config"); return !ok })
}

func TestMappingsFollowServices(t *testing.T) {
	p := DefaultPorts()
	cfg := config.Default()
	cfg.Federation.Off, cfg.TURN.Enabled = true, false
	if m := p.Mappings(cfg); len(m) != 2 {
		t.Fatalf("chat only: %v", m)
	}
	cfg.Net.ACME.Enabled, cfg.Federation.Off, cfg.TURN.Enabled = true, false, true
	cfg.TURN.RelayFirst, cfg.TURN.RelayLast = 50000, 50009
	m := p.Mappings(cfg)
	want := 2 + 1 + 2 + 2 + 10
	if len(m) != want {
		t.Fatalf("all services: %d mappings, want %d: %v", len(m), want, m)
	}
}

// TestRouterMapsFederation: with federation on (the default) the router is
// asked for TCP 5269, the port other servers and their dialback connect
// to; with the config's federation section off, not. Before, netconf
// never asked for it.
func TestRouterMapsFederation(t *testing.T) {
	s := &Service{}
	s.opts.Ports = DefaultPorts()
	cfg := config.Default()
	has := func() bool {
		for _, m := range s.upnpOptions(cfg).Ports {
			if m.Proto == "tcp" && m.Port == 5269 {
				return true
			}
		}
		return false
	}
	if !has() {
		t.Errorf("federation on: tcp/5269 not mapped: %v", s.upnpOptions(cfg).Ports)
	}
	cfg.Federation.Off = true
	if has() {
		t.Errorf("federation off: tcp/5269 mapped")
	}
}
