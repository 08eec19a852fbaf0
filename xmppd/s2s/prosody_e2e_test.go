//go:build e2e

package s2s_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/s2s"
)

const debianPython = "/usr/bin/python3" // Debian's, which has python3-slixmpp

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// prosody runs Debian's prosody as prosody.test on loopback: s2s with
// encryption required, resolving names through the test zone (its
// libunbound forwards to the test DNS server), trusting the test CA.
// extra are Lua lines for the global section (a VirtualHost or Component
// with its options in braces returns to it). Its group chat service,
// conference.prosody.test (prosody's mod_muc), is in its certificate and
// in the test zone as prosody.test is.
func startProsody(t *testing.T, w *world, certCA *s2s.TestCA, secureAuth bool, extra ...string) (c2s int) {
	t.Helper()
	for _, bin := range []string{"prosody", "prosodyctl", debianPython} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed (make test-deps): %v", bin, err)
		}
	}
	// Without lua-unbound prosody asks the system's resolver (the names
	// of the test zone would leave the machine), with it only ours.
	if out, err := exec.Command("lua5.4", "-e", `require "lunbound"`).CombinedOutput(); err != nil {
		t.Fatalf("prosody's lua-unbound is needed (make test-deps): %v\n%s", err, out)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certCA.Issue(t, cert, key, "prosody.test", "conference.prosody.test")
	c2s, s2sPort := freePort(t), freePort(t)
	_, dnsPort, _ := net.SplitHostPort(w.dns.Addr)
	cfg := filepath.Join(dir, "prosody.cfg.lua")
	conf := fmt.Sprintf(`-- written by xmppd/s2s's prosody_e2e_test.go
run_as_root = true
daemonize = false
pidfile = %[1]q
data_path = %[2]q
log = { { levels = { min = "debug" }, to = "file", filename = %[3]q } }
modules_enabled = { "roster", "saslauth", "tls", "dialback", "disco", "ping", "pep" }
authentication = "internal_plain"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = %[4]v
interfaces = { "127.0.0.1" }
c2s_ports = { %[5]d }
c2s_direct_tls_ports = { }
s2s_ports = { %[6]d }
s2s_direct_tls_ports = { }
ssl = { certificate = %[7]q, key = %[8]q, cafile = %[9]q }
-- Every name through the test zone's server only (libunbound refuses
-- a forwarder on loopback unless told, and answers for "test." itself,
-- RFC 6761, unless told), never the root servers.
unbound = { resolvconf = false, hoststxt = false, forward = "127.0.0.1@%[10]s",
	options = { ["do-not-query-localhost:"] = "no", ["local-zone:"] = "test. transparent" } }
%[11]s
VirtualHost "prosody.test"
Component "conference.prosody.test" "muc"
`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), filepath.Join(dir, "prosody.log"), secureAuth,
		c2s, s2sPort, cert, key, w.ca.PEMFile, dnsPort, strings.Join(extra, "\n"))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "prosodyctl", "--config", cfg, "register", "alice", "prosody.test", "alice-pw").CombinedOutput(); err != nil {
		t.Fatalf("prosodyctl register: %v\n%s", err, out)
	}
	cmd := exec.Command("prosody", "--config", cfg, "-F")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prosody.log"))
			t.Logf("prosody output:\n%s\nprosody log (tail):\n%s", out.String(), tailLines(string(b), 150))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(c2s), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prosody not listening on %d: %v\n%s", c2s, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.dns.SRV(t, "xmpp-server", "prosody.test", 0, 0, s2sPort, "xmpp.prosody.test")
	w.dns.SRV(t, "xmpp-server", "conference.prosody.test", 0, 0, s2sPort, "xmpp.prosody.test")
	w.dns.Host(t, "xmpp.prosody.test", "127.0.0.1")
	return c2s
}

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// federate runs testdata/federate.py: alice@prosody.test and
// bob@hearth.test exchange messages both ways and subscribe to each
// other's presence.
func federate(t *testing.T, w *world, hearth *box, prosodyC2S int, cas ...*s2s.TestCA) {
	t.Helper()
	// The clients trust every CA involved (prosody's may not be ours).
	var bundle []byte
	for _, ca := range append([]*s2s.TestCA{w.ca}, cas...) {
		b, err := os.ReadFile(ca.PEMFile)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, b...)
	}
	caFile := filepath.Join(t.TempDir(), "clients-ca.pem")
	if err := os.WriteFile(caFile, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hp := hearth.d.C2SAddr.(*net.TCPAddr).Port
	cmd := exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "federate.py"), "--ca", caFile,
		"--client", fmt.Sprintf("alice@prosody.test:alice-pw:127.0.0.1:%d:SCRAM-SHA-1", prosodyC2S),
		"--client", fmt.Sprintf("bob@hearth.test:bob-pw:127.0.0.1:%d:SCRAM-SHA-256", hp))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("federate.py: %v\n%s", err, out)
	}
}

// Both directions by dialback: prosody's certificate comes from a CA we do
// not trust and we offer none, so neither side can authenticate the
// other by certificate; each verifies the other's key by connecting back.
func TestProsodyDialback(t *testing.T) {
	w := newWorld(t)
	w.dns.Log = t.Logf
	other := s2s.NewCA(t, t.TempDir())
	pc2s := startProsody(t, w, other, false)
	hearth := w.start(t, "hearth.test", nil, func(c *s2s.Config) { c.NoClientCert = true })
	federate(t, w, hearth, pc2s, other)
	for _, want := range []string{`msg="s2s: connected out" domain=prosody.test from=hearth.test auth=dialback`, `msg="s2s: peer authenticated" domain=prosody.test auth=dialback`} {
		if !hearth.log.has(want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

// Both directions by certificate: prosody requires it (s2s_secure_auth),
// both certificates come from the test CA, and our outgoing stream
// authenticates with SASL EXTERNAL.
func TestProsodyCertificates(t *testing.T) {
	w := newWorld(t)
	pc2s := startProsody(t, w, w.ca, true)
	hearth := w.start(t, "hearth.test", nil, nil)
	federate(t, w, hearth, pc2s)
	if !hearth.log.has(`msg="s2s: connected out" domain=prosody.test from=hearth.test auth=EXTERNAL`) {
		t.Errorf("our stream to prosody not authenticated by SASL EXTERNAL")
	}
	if !hearth.log.has(`msg="s2s: peer authenticated" domain=prosody.test`) {
		t.Errorf("prosody's stream to us not authenticated")
	}
}
