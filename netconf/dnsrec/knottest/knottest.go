// Package knottest runs Debian's Knot DNS (knotd) on a loopback port as an
// authoritative server for one test zone that accepts RFC 2136 updates
// signed with a TSIG key. Tests of dnsrec and acme use it as the real DNS
// server behind dynamic DNS, record checks and DNS-01 challenges.
package knottest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hearthchat/hearth/internal/testenv"
)

// Server is a running knotd.
type Server struct {
	Addr    string // "127.0.0.1:port", UDP and TCP
	Zone    string // "club.example."
	KeyName string // TSIG key name, "hearth-test."
	KeyAlg  string // "hmac-sha256"
	Secret  string // base64
}

// Settings are the rfc2136 provider settings for config.Net.DNS.Settings.
func (s *Server) Settings() map[string]string {
	return map[string]string{"server": s.Addr, "key_name": s.KeyName, "key_alg": s.KeyAlg, "key": s.Secret}
}

// Start runs knotd serving zone with the given zone-file lines (relative or
// absolute names, e.g. "@ A 127.0.0.1"). It is stopped when the test ends.
// Without knotd the test is skipped, except in CI (CI=true), where it fails.
func Start(t testing.TB, zone string, lines ...string) *Server {
	t.Helper()
	knotd := testenv.NeedCommand(t, "knotd", "apt package knot; make test-deps installs it")
	zone = dns.Fqdn(strings.ToLower(zone))
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	s := &Server{Zone: zone, KeyName: "hearth-test.", KeyAlg: "hmac-sha256", Secret: base64.StdEncoding.EncodeToString(secret)}

	zf := fmt.Sprintf("$ORIGIN %s\n$TTL 60\n@ SOA ns.%s admin.%s 1 60 60 600 60\n@ NS ns\nns A 127.0.0.1\n%s\n",
		zone, zone, zone, strings.Join(lines, "\n"))
	if err := os.WriteFile(filepath.Join(dir, "zone"), []byte(zf), 0o644); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		conf := fmt.Sprintf(`server:
    listen: 127.0.0.1@%d
    rundir: %[2]s
database:
    storage: %[2]s
key:
  - id: %[3]s
    algorithm: %[4]s
    secret: %[5]s
acl:
  - id: upd
    key: %[3]s
    action: [update, transfer]
template:
  - id: default
    storage: %[2]s
    zonefile-sync: -1
zone:
  - domain: %[6]s
    file: %[2]s/zone
    acl: upd
log:
  - target: stderr
    any: info
`, port, dir, s.KeyName, s.KeyAlg, s.Secret, zone)
		cf := filepath.Join(dir, "knot.conf")
		if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("knot-%d.log", attempt)))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(knotd, "-c", cf)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("knotd: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(exited) }()
		stop := func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		if s.waitReady(exited) {
			t.Cleanup(stop)
			return s
		}
		stop()
		log, _ := os.ReadFile(logf.Name())
		if attempt == 2 {
			t.Fatalf("knotd did not start:\n%s", log)
		}
		t.Logf("knotd did not start on port %d, retrying:\n%s", port, log)
	}
}

// waitReady waits until the zone answers SOA.
func (s *Server) waitReady(exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		m := new(dns.Msg)
		m.SetQuestion(s.Zone, dns.TypeSOA)
		c := &dns.Client{Timeout: 300 * time.Millisecond}
		if r, _, err := c.Exchange(m, s.Addr); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Lookup asks the server for name/type and returns the answers' data in
// zone-file form.
func (s *Server) Lookup(t testing.TB, name string, typ uint16) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), typ)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, _, err := (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, m, s.Addr)
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	var out []string
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == typ {
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	return out
}

// freePort finds a port free for both UDP and TCP on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}
