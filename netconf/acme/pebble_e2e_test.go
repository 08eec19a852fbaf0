//go:build e2e

package acme

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/internal/testenv"
	"github.com/hearthchat/hearth/netconf/dnsrec"
	"github.com/hearthchat/hearth/netconf/dnsrec/knottest"
	"github.com/hearthchat/hearth/netconf/status"
	"github.com/hearthchat/hearth/xmppd/tlsconf"
)

const domain = "club.example"

// pebble is Debian's pebble (a test ACME CA) on loopback ports.
type pebble struct {
	dir   string // ACME directory URL
	mgmt  string // management API base URL
	roots *x509.CertPool
	// httpPort and tlsPort are where pebble's validator connects for
	// HTTP-01 and TLS-ALPN-01.
	httpPort, tlsPort int
}

// startPebble runs pebble resolving names through dnsServer.
func startPebble(t *testing.T, dnsServer string) *pebble {
	t.Helper()
	bin := testenv.NeedCommand(t, "pebble", "apt package pebble; make test-deps installs it")
	dir := t.TempDir()
	roots := writeServerCert(t, dir)
	p := &pebble{roots: roots, httpPort: freePort(t), tlsPort: freePort(t)}
	listen, mgmt := freePort(t), freePort(t)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":                    filepath.Join(dir, "cert.pem"),
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       p.httpPort,
		"tlsPort":                        p.tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(cfg)
	cf := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cf, "-dnsserver", dnsServer)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("pebble log:\n%s", tail(log, 4000))
		}
	})
	p.dir = fmt.Sprintf("https://127.0.0.1:%d/dir", listen)
	p.mgmt = fmt.Sprintf("https://127.0.0.1:%d", mgmt)
	cl := p.client()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("pebble exited:\n%s", log)
		default:
		}
		if r, err := cl.Get(p.dir); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("pebble did not come up")
		}
	}
	return p
}

func (p *pebble) client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.roots}}}
}

// issuingRoots are the roots pebble signs with (new on every start).
func (p *pebble) issuingRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	r, err := p.client().Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble roots: %s", b)
	}
	return pool
}

// writeServerCert makes a throwaway CA and a certificate for 127.0.0.1
// for pebble's own HTTPS (Debian's package ships none).
func writeServerCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hearth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	lt := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, lt, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// zone is the test zone: every name points at 127.0.0.1, so pebble's
// validator only ever connects to loopback.
func startDNS(t *testing.T) *knottest.Server {
	return knottest.Start(t, domain,
		"@ A 127.0.0.1",
		"groups CNAME club.example.",
		"upload CNAME club.example.")
}

// recorder keeps every status check set, in order.
type recorder struct {
	status.Board
	mu  sync.Mutex
	all []status.Check
}

func (r *recorder) Set(c status.Check) {
	r.mu.Lock()
	c.Updated = time.Now()
	r.all = append(r.all, c)
	r.mu.Unlock()
	r.Board.Set(c)
}

func (r *recorder) history() []status.Check {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]status.Check(nil), r.all...)
}

func (r *recorder) cert() status.Check { c, _ := r.Report().Get(CheckID); return c }

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// run starts m.Run and returns a stop function that waits for it.
func run(t *testing.T, m *Manager) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// selfSigned puts xmppd's fallback certificate in place, as on a fresh box.
func selfSignedState(t *testing.T) (state.Dir, []byte) {
	t.Helper()
	st := state.Dir(t.TempDir())
	if err := os.MkdirAll(st.TLS(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := tlsconf.SelfSigned(filepath.Join(st.TLS(), "cert.pem"), filepath.Join(st.TLS(), "key.pem"),
		[]string{domain, "groups." + domain, "upload." + domain}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(st.TLS(), "cert.pem"))
	return st, b
}

// checkInstalled verifies the files: chain to pebble's root for every
// name, key 0600 and matching, and xmppd's loader serving it.
func checkInstalled(t *testing.T, p *pebble, st state.Dir, certs *tlsconf.Certs) *x509.Certificate {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(st.TLS(), "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(st.TLS(), "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key.pem mode %v", fi.Mode().Perm())
	}
	keyPEM, _ := os.ReadFile(filepath.Join(st.TLS(), "key.pem"))
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("installed pair: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		c, _ := x509.ParseCertificate(der)
		inter.AddCert(c)
	}
	for _, n := range []string{domain, "groups." + domain, "upload." + domain} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: p.issuingRoots(t), Intermediates: inter}); err != nil {
			t.Errorf("verify %s: %v", n, err)
		}
	}
	if certs != nil {
		got, err := certs.Get(&tls.ClientHelloInfo{ServerName: domain})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Certificate[0], leaf.Raw) {
			t.Error("xmppd's tlsconf does not serve the new certificate")
		}
	}
	return leaf
}

func testChallenge(t *testing.T, ch Challenge) {
	dnsSrv := startDNS(t)
	p := startPebble(t, dnsSrv.Addr)
	st, _ := selfSignedState(t)
	// xmppd's loader, serving the self-signed certificate before we start.
	certs, err := tlsconf.Load(st.TLS(), []string{domain})
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	o := Options{Domain: domain, Email: "admin@club.example", Directory: p.dir, RootCAs: p.roots,
		Challenges: []Challenge{ch},
		HTTPAddr:   fmt.Sprintf("127.0.0.1:%d", p.httpPort),
		TLSAddr:    fmt.Sprintf("127.0.0.1:%d", p.tlsPort),
		State:      st, Reporter: &rec, MinRetry: 200 * time.Millisecond, MaxRetry: time.Second}
	if ch == DNS01 {
		prov, err := dnsrec.NewProvider(config.DNS{Provider: "rfc2136", Settings: dnsSrv.Settings()})
		if err != nil {
			t.Fatal(err)
		}
		o.DNS, o.DNSResolvers = prov, []string{dnsSrv.Addr}
		o.DNSPropagationTimeout = 30 * time.Second
	}
	o.Log = testLog()
	var newCerts sync.WaitGroup
	newCerts.Add(1)
	var once sync.Once
	o.OnCert = func(*x509.Certificate) { once.Do(newCerts.Done) }
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, m)
	waitFor(t, 90*time.Second, "certificate", func() bool { return rec.cert().Level == status.OK })
	newCerts.Wait()
	stop()
	leaf := checkInstalled(t, p, st, certs)
	c := rec.cert()
	want := fmt.Sprintf("Certificate for %s valid until %s.", domain, leaf.NotAfter.Local().Format("2 January 2006"))
	if c.Message != want || c.Action != "" {
		t.Errorf("status %+v, want message %q", c, want)
	}
	if h := rec.history(); h[0].Level != status.Pending {
		t.Errorf("first status %+v, want pending", h[0])
	}
	if ch == DNS01 {
		if txt := dnsSrv.Lookup(t, "_acme-challenge."+domain, dns.TypeTXT); len(txt) != 0 {
			t.Errorf("challenge record left behind: %v", txt)
		}
	}

	// Renewal: with a renewal window longer than the certificate's life
	// the next run replaces it at once, and keeps the new one.
	o.RenewBefore = 100 * 365 * 24 * time.Hour
	o.MinRetry = time.Hour // at most one renewal in this test
	renewed := make(chan *x509.Certificate, 1)
	o.OnCert = func(l *x509.Certificate) { renewed <- l }
	m2, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := run(t, m2)
	var l2 *x509.Certificate
	select {
	case l2 = <-renewed:
	case <-time.After(90 * time.Second):
		t.Fatalf("no renewal; status %+v", rec.cert())
	}
	waitFor(t, 10*time.Second, "status after renewal", func() bool { return rec.cert().Detail["serial"] == l2.SerialNumber.Text(16) })
	stop2()
	if l2.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Fatal("renewal kept the old serial")
	}
	if got := checkInstalled(t, p, st, nil); got.SerialNumber.Cmp(l2.SerialNumber) != 0 {
		t.Fatal("renewed certificate not installed")
	}
}

func TestHTTP01(t *testing.T)    { testChallenge(t, HTTP01) }
func TestTLSALPN01(t *testing.T) { testChallenge(t, TLSALPN01) }

// DNS-01 through libdns/rfc2136 against Knot; pebble resolves the
// challenge record through the same server.
func TestDNS01(t *testing.T) { testChallenge(t, DNS01) }

// delays are the waits the manager announced after each failure.
func delays(h []status.Check) []time.Duration {
	var out []time.Duration
	seen := map[string]bool{}
	for _, c := range h {
		n := c.Detail["failures"]
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		d, err := time.ParseDuration(c.Detail["retry_in"])
		if err != nil {
			continue
		}
		out = append(out, d)
	}
	return out
}

// faultCase runs a manager against a failing CA and checks the common
// promises: status Error with an action, the self-signed certificate left
// alone, retries with growing delays.
func faultCase(t *testing.T, o Options, wantMsg string) *recorder {
	st, before := selfSignedState(t)
	var rec recorder
	o.Domain, o.State, o.Reporter = domain, st, &rec
	o.MinRetry, o.MaxRetry = time.Second, 4*time.Second
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, m)
	waitFor(t, 60*time.Second, "three failures", func() bool {
		n, _ := strconv.Atoi(rec.cert().Detail["failures"])
		return n >= 3
	})
	stop()
	c := rec.cert()
	if c.Level != status.Error || c.Action == "" || !strings.Contains(c.Message, wantMsg) {
		t.Errorf("status %+v, want error with %q", c, wantMsg)
	}
	t.Logf("status: %s | %s", c.Message, c.Action)
	after, _ := os.ReadFile(filepath.Join(string(st), "tls", "cert.pem"))
	if !bytes.Equal(before, after) {
		t.Error("the existing certificate was replaced after a failure")
	}
	return &rec
}

// The CA cannot be reached at all.
func TestCAUnreachable(t *testing.T) {
	port := freePort(t) // closed again: connections are refused
	rec := faultCase(t, Options{Directory: fmt.Sprintf("https://127.0.0.1:%d/dir", port), Challenges: []Challenge{HTTP01},
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), TLSAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t))},
		"The box could not reach the certificate authority")
	d := delays(rec.history())
	if len(d) < 3 || d[0] != time.Second || d[1] != 2*time.Second || d[2] != 4*time.Second {
		t.Errorf("back-off delays %v, want 1s 2s 4s", d)
	}
}

// pebble is there but cannot validate: nothing answers on the port it
// checks (the box's port 80 is not forwarded).
func TestChallengeNotReachable(t *testing.T) {
	dnsSrv := startDNS(t)
	p := startPebble(t, dnsSrv.Addr)
	faultCase(t, Options{Directory: p.dir, RootCAs: p.roots, Challenges: []Challenge{HTTP01},
		// our listener binds elsewhere than where pebble connects
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), TLSAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t))},
		"could not reach this box as club.example")
}

// A CA that answers with ACME errors: rate limiting (we wait longer) and
// internal errors. Beside the pebble tests, a tiny server can say what
// pebble never says.
func TestCAErrors(t *testing.T) {
	for _, tc := range []struct {
		name, typ string
		code      int
		msg       string
		minDelay  time.Duration
	}{
		{"ratelimited", "urn:ietf:params:acme:error:rateLimited", 429, "asks us to wait", 4 * time.Second},
		{"internal", "urn:ietf:params:acme:error:serverInternal", 500, "problem on its side", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(tc.code)
				fmt.Fprintf(w, `{"type":%q,"detail":"test","status":%d}`, tc.typ, tc.code)
			}))
			defer srv.Close()
			roots := x509.NewCertPool()
			roots.AddCert(srv.Certificate())
			rec := faultCase(t, Options{Directory: srv.URL + "/dir", RootCAs: roots, Challenges: []Challenge{HTTP01},
				HTTPAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), TLSAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}, tc.msg)
			if d := delays(rec.history()); len(d) == 0 || d[0] < tc.minDelay {
				t.Errorf("delays %v, want the first ≥ %v", d, tc.minDelay)
			}
		})
	}
}

// A renewal that fails while the current certificate still works is a
// warning (and an error once it is about to run out); the working
// certificate stays.
func TestRenewalFailureKeepsCertificate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		left  time.Duration
		level status.Level
	}{
		{"weeks left", 20 * 24 * time.Hour, status.Warn},
		{"one day left", 24 * time.Hour, status.Error},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := state.Dir(t.TempDir())
			now := time.Now()
			leaf := testCert(t, st.TLS(), false, now.Add(-60*24*time.Hour), now.Add(tc.left), domain, "groups."+domain, "upload."+domain)
			before, _ := os.ReadFile(filepath.Join(st.TLS(), "cert.pem"))
			var rec recorder
			m, err := New(Options{Domain: domain, State: st, Reporter: &rec, Challenges: []Challenge{HTTP01},
				Directory: fmt.Sprintf("https://127.0.0.1:%d/dir", freePort(t)),
				HTTPAddr:  fmt.Sprintf("127.0.0.1:%d", freePort(t)), TLSAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
				MinRetry: time.Second, MaxRetry: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, m)
			waitFor(t, 30*time.Second, "two failed renewals", func() bool {
				n, _ := strconv.Atoi(rec.cert().Detail["failures"])
				return n >= 2
			})
			stop()
			c := rec.cert()
			if c.Level != tc.level || c.Action == "" || !strings.Contains(c.Message, "valid until") ||
				c.Detail["serial"] != leaf.SerialNumber.Text(16) {
				t.Errorf("status %+v", c)
			}
			after, _ := os.ReadFile(filepath.Join(st.TLS(), "cert.pem"))
			if !bytes.Equal(before, after) {
				t.Error("certificate replaced after a failed renewal")
			}
		})
	}
}

// With both allowed, DNS-01 is tried first; when the DNS host refuses our
// key, HTTP-01 still gets the certificate.
func TestDNSFailsHTTPFallback(t *testing.T) {
	dnsSrv := startDNS(t)
	p := startPebble(t, dnsSrv.Addr)
	st, _ := selfSignedState(t)
	bad := dnsSrv.Settings()
	bad["key"] = "d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5d3JvbmdrZXk="
	prov, err := dnsrec.NewProvider(config.DNS{Provider: "rfc2136", Settings: bad})
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	m, err := New(Options{Domain: domain, Directory: p.dir, RootCAs: p.roots,
		Challenges: []Challenge{DNS01, HTTP01}, DNS: prov, DNSResolvers: []string{dnsSrv.Addr},
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", p.httpPort), TLSAddr: fmt.Sprintf("127.0.0.1:%d", p.tlsPort),
		State: st, Reporter: &rec, MinRetry: 200 * time.Millisecond, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.issuers) != 2 || m.issuers[0].kind != "dns-01" {
		t.Fatalf("issuers %+v", m.issuers)
	}
	stop := run(t, m)
	waitFor(t, 90*time.Second, "certificate", func() bool { return rec.cert().Level == status.OK })
	stop()
	checkInstalled(t, p, st, nil)
	for _, c := range rec.history() {
		if c.Level == status.Error {
			t.Errorf("fallback should not have shown an error: %+v", c)
		}
	}
}

// testLog is certmagic's log on stderr when ACME_TEST_LOG is set.
func testLog() io.Writer {
	if os.Getenv("ACME_TEST_LOG") != "" {
		return os.Stderr
	}
	return nil
}
