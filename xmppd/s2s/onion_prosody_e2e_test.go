//go:build e2e

package s2s_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/s2s"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// modOnions is Debian's prosody-modules' mod_onions, Prosody's way to
// .onion domains (through tor's SOCKS5 port).
const modOnions = "/usr/lib/prosody/modules/mod_onions/mod_onions.lua"

// A real peer with an onion Hearth: Debian's prosody (prosody.test, a DNS
// domain) with mod_onions reaches hearth's .onion domain through its
// SOCKS5 port (a SOCKS5 server standing in for tor, delivering to our
// onion listener as tor would), and verifies our dialback key the same
// way; our links to prosody.test go by DNS. Messages and a presence
// subscription both ways (testdata/federate.py), and no .onion name
// reaches the DNS server.
func TestProsodyOnion(t *testing.T) {
	if _, err := os.Stat(modOnions); err != nil {
		t.Fatalf("prosody's mod_onions is needed (apt package prosody-modules; make test-deps): %v", err)
	}
	w := newWorld(t)
	var (
		mu      sync.Mutex
		queries []string
	)
	w.dns.Log = func(format string, args ...any) {
		mu.Lock()
		queries = append(queries, fmt.Sprint(args[0]))
		mu.Unlock()
		t.Logf(format, args...)
	}
	name := newOnionName(t)
	sock := filepath.Join(t.TempDir(), "onion-s2s.sock")
	socks := s2s.StartSOCKS(t, func(r s2s.SOCKSRequest) (net.Conn, error) {
		if r.AddrType != 3 || r.Host != name || r.Port != 5269 {
			t.Errorf("prosody's SOCKS request %+v, want domain name %s port 5269", r, name)
		}
		return net.Dial("unix", sock)
	})
	_, socksPort, _ := net.SplitHostPort(socks.Addr)
	pc2s := startProsody(t, w, w.ca, false,
		`modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "ping", "pep", "onions" }`,
		`onions_socks5_host = "127.0.0.1"`, "onions_socks5_port = "+socksPort)

	other := s2s.NewCA(t, t.TempDir())
	log := &logBuf{t: t}
	hearth := &box{domain: name, log: log}
	hearth.d = xmpptest.Start(t, func(o *xmppd.Options) {
		o.Domain = name
		tls := o.State.TLS()
		// From a CA prosody does not trust (no CA issues one for a
		// made-up onion name): prosody verifies our dialback key by
		// connecting back to the onion domain through its SOCKS port.
		other.Issue(t, filepath.Join(tls, "cert.pem"), filepath.Join(tls, "key.pem"), name, "groups."+name, "upload."+name)
		o.S2S = xmppd.S2SOptions{Out: true, Onion: "unix:" + sock, Resolver: w.dns.Addr, CAFile: w.ca.PEMFile, AllowLocal: true,
			Tune: func(c *s2s.Config) {
				c.Log = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}}
	})

	caFile := caBundle(t, w.ca, other)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hp := hearth.d.C2SAddr.(*net.TCPAddr).Port
	out, err := exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "federate.py"), "--ca", caFile,
		"--client", fmt.Sprintf("alice@prosody.test:alice-pw:127.0.0.1:%d:SCRAM-SHA-1", pc2s),
		"--client", fmt.Sprintf("bob@%s:bob-pw:127.0.0.1:%d:SCRAM-SHA-256", name, hp)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("federate.py: %v\n%s", err, out)
	}
	// Prosody sends its dialback verify on its own link to us when it has
	// one: one request through SOCKS may carry both.
	if len(socks.Requests()) == 0 {
		t.Error("prosody never went through its SOCKS port")
	}
	if !log.has(`msg="s2s: connected out" domain=prosody.test from=` + name + ` auth=dialback`) {
		t.Error("our link to prosody not authenticated by dialback (prosody's connect-back over onion)")
	}
	if !log.has(`msg="s2s: peer authenticated" domain=prosody.test`) {
		t.Error("prosody's stream over onion not authenticated")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, q := range queries {
		if strings.Contains(strings.ToLower(q), "onion") {
			t.Errorf("DNS was asked %q", q)
		}
	}
}

// The other way: prosody serves an onion domain (a VirtualHost named by
// a made-up onion address beside prosody.test), and our link to it goes
// through our SOCKS port only (the stand-in for tor delivers to prosody's
// s2s port); a disco#info query to that domain is answered. Prosody
// verifies our key by connecting back to hearth.test by DNS.
func TestProsodyOnionOutbound(t *testing.T) {
	if _, err := os.Stat(modOnions); err != nil {
		t.Fatalf("prosody's mod_onions is needed (apt package prosody-modules; make test-deps): %v", err)
	}
	w := newWorld(t)
	var (
		mu      sync.Mutex
		queries []string
	)
	w.dns.Log = func(format string, args ...any) {
		mu.Lock()
		queries = append(queries, fmt.Sprint(args[0]))
		mu.Unlock()
		t.Logf(format, args...)
	}
	name := newOnionName(t)
	var prosodyS2S string
	socks := s2s.StartSOCKS(t, func(r s2s.SOCKSRequest) (net.Conn, error) {
		if r.AddrType != 3 || r.Host != name || r.Port != 5269 {
			t.Errorf("our SOCKS request %+v, want domain name %s port 5269", r, name)
		}
		return net.Dial("tcp", prosodyS2S)
	})
	startProsody(t, w, w.ca, false,
		`modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "ping", "pep", "onions" }`,
		`VirtualHost "`+name+`"`)
	_, srvs, err := s2s.Resolver(w.dns.Addr).LookupSRV(context.Background(), "xmpp-server", "tcp", "prosody.test")
	if err != nil || len(srvs) != 1 {
		t.Fatalf("prosody's s2s port: %v %v", srvs, err)
	}
	prosodyS2S = net.JoinHostPort("127.0.0.1", fmt.Sprint(srvs[0].Port))
	mu.Lock()
	queries = nil // the lookup above
	mu.Unlock()

	hearth := w.start(t, "hearth.test", nil, func(c *s2s.Config) { c.Onion.SOCKS = socks.Addr })
	bob := hearth.login(t, "bob")
	bob.Send("<iq type='get' to='" + name + "' id='disco1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	el := expect(t, bob, "prosody's answer", func(el *stream.Element) bool { return el.Local == "iq" && el.Get("id") == "disco1" })
	if el.Get("type") != "result" || el.Get("from") != name {
		t.Fatalf("disco#info of %s: %s", name, el)
	}
	if len(socks.Requests()) == 0 {
		t.Error("our link did not go through the SOCKS port")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, q := range queries {
		if strings.Contains(strings.ToLower(q), "onion") {
			t.Errorf("DNS was asked %q", q)
		}
	}
}
