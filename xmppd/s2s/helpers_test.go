package s2s

// Test fixtures shared by this package's tests (and the e2e tests beside
// them): a tiny authoritative DNS server on loopback for a test zone, and
// a test CA that issues certificates for test domains.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDNS answers A, AAAA and SRV queries from its records; a name it
// has no record of at all is NXDOMAIN.
type TestDNS struct {
	Addr string
	// Log, when set, logs every query and its answer.
	Log func(format string, args ...any)
	mu  sync.Mutex
	rrs map[string][]dns.RR // by lower-case FQDN
}

// StartDNS serves on a loopback UDP port until the test ends.
func StartDNS(t testing.TB) *TestDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &TestDNS{Addr: pc.LocalAddr().String(), rrs: map[string][]dns.RR{}}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

// Add adds records in zone-file syntax ("_xmpp-server._tcp.a.test. 60 IN
// SRV 0 0 5269 a.test.").
func (d *TestDNS) Add(t testing.TB, records ...string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		d.rrs[name] = append(d.rrs[name], rr)
	}
}

// Replace sets the records of the names in records to exactly those,
// at once (a test moves a domain to another port).
func (d *TestDNS) Replace(t testing.TB, records ...string) {
	t.Helper()
	m := map[string][]dns.RR{}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		m[name] = append(m[name], rr)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, rrs := range m {
		d.rrs[name] = rrs
	}
}

// SRVRecord is an SRV record in zone-file syntax.
func SRVRecord(service, domain string, prio, weight, port int, target string) string {
	return "_" + service + "._tcp." + dns.Fqdn(domain) + " 60 IN SRV " + itoa(prio) + " " + itoa(weight) + " " + itoa(port) + " " + dns.Fqdn(target)
}

// Host adds A records for name.
func (d *TestDNS) Host(t testing.TB, name string, ips ...string) {
	for _, ip := range ips {
		d.Add(t, dns.Fqdn(name)+" 60 IN A "+ip)
	}
}

// SRV adds an SRV record (service "xmpp-server" or "xmpps-server").
func (d *TestDNS) SRV(t testing.TB, service, domain string, prio, weight, port int, target string) {
	d.Add(t, SRVRecord(service, domain, prio, weight, port, target))
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func (d *TestDNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) == 1 {
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		d.mu.Lock()
		rrs, ok := d.rrs[name]
		for n := range d.rrs {
			// An empty non-terminal (hearth.test above
			// _xmpp-server._tcp.hearth.test) exists: NXDOMAIN for it
			// would, by RFC 8020, deny every name below it too
			// (libunbound, in prosody, caches it so).
			ok = ok || strings.HasSuffix(n, "."+name)
		}
		d.mu.Unlock()
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
	}
	if d.Log != nil && len(r.Question) == 1 {
		d.Log("dns: %s %s -> %s, %d answers", r.Question[0].Name, dns.TypeToString[r.Question[0].Qtype], dns.RcodeToString[m.Rcode], len(m.Answer))
	}
	w.WriteMsg(m)
}

// TestCA issues certificates for test domains.
type TestCA struct {
	Cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	PEMFile string // the CA certificate, for Config.Roots / -s2s-ca
}

// NewCA makes a CA and writes its certificate to a file in dir.
func NewCA(t testing.TB, dir string) *TestCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Hearth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &TestCA{Cert: cert, key: key, PEMFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(ca.PEMFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// Pool is a pool holding only the CA.
func (ca *TestCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue writes a certificate for names (server and client use) and its key
// as certPath and keyPath.
func (ca *TestCA) Issue(t testing.TB, certPath, keyPath string, names ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(certPath), 0o700)
	os.MkdirAll(filepath.Dir(keyPath), 0o700)
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
