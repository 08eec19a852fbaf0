package tlsconf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadCreatesSelfSigned(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(dir, []string{"club.example"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Recovered != nil {
		t.Fatalf("fresh directory reported as recovered: %v", c.Recovered)
	}
	cert, _ := c.Get(nil)
	if cert == nil || cert.Leaf == nil && len(cert.Certificate) == 0 {
		t.Fatal("no certificate")
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v %v", fi.Mode(), err)
	}
}

// A certificate and key that do not belong together (a crash between two
// writes, a wrong file copied in) must not keep the server from starting.
func TestLoadRecoversFromMismatchedPair(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if _, err := Load(a, []string{"a.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(b, []string{"b.example"}); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(b, "key.pem"))
	os.WriteFile(filepath.Join(a, "key.pem"), key, 0o600)
	c, err := Load(a, []string{"a.example"})
	if err != nil {
		t.Fatalf("Load with a mismatched pair: %v", err)
	}
	if c.Recovered == nil {
		t.Fatal("mismatched pair not reported")
	}
	if cert, _ := c.Get(nil); cert == nil {
		t.Fatal("no certificate after recovery")
	}
	ents, _ := os.ReadDir(a)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !strings.Contains(strings.Join(names, " "), "cert.pem.broken-") {
		t.Fatalf("broken files not kept for inspection: %v", names)
	}
}

// A Pi has no battery clock: xmppd may make its certificate at 1970, and the
// box may learn the time later or never. The certificate must be accepted
// by an app that pinned it at every one of those clocks.
func TestSelfSignedValidAtAnyClock(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(dir, []string{"club.example"})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := c.Get(nil)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pinned := x509.NewCertPool()
	pinned.AddCert(leaf)
	for _, at := range []time.Time{
		time.Unix(5, 0), // a Pi 5 s after power-on
		time.Date(1980, 1, 2, 0, 0, 0, 0, time.UTC), // where the old certificate ended
		time.Now(),
		time.Now().AddDate(60, 0, 0), // decades later
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	} {
		if err := handshake(c, &tls.Config{RootCAs: pinned, ServerName: "club.example", Time: func() time.Time { return at }}); err != nil {
			t.Errorf("handshake with the clock at %v: %v", at, err)
		}
	}
}

// handshake connects a TLS client with cfg to a server using c.
func handshake(c *Certs, cfg *tls.Config) error {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv := tls.Server(a, c.Config())
	go srv.Handshake()
	a.SetDeadline(time.Now().Add(5 * time.Second))
	b.SetDeadline(time.Now().Add(5 * time.Second))
	return tls.Client(b, cfg).Handshake()
}

// epochCert writes what an older xmppd made on a Pi whose clock said 1970:
// self-signed, valid from 31 Dec 1969 23:00 to 1 Jan 1980.
func epochCert(t *testing.T, dir string) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	made := time.Unix(21, 0)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "club.example", Organization: []string{"Hearth"}},
		NotBefore:    made.Add(-time.Hour),
		NotAfter:     made.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"club.example"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return der
}

func served(t *testing.T, c *Certs) []byte {
	t.Helper()
	cert, _ := c.Get(nil)
	if cert == nil || len(cert.Certificate) == 0 {
		t.Fatal("no certificate")
	}
	return cert.Certificate[0]
}

// A box that made its certificate at 1970 before this fix serves one that
// expired in 1980: it is replaced once (kept aside), and the replacement is
// kept on every later start, whatever the clock says.
func TestEpochCertificateReplacedOnce(t *testing.T) {
	dir := t.TempDir()
	old := epochCert(t, dir)
	c, err := Load(dir, []string{"club.example"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Recovered == nil {
		t.Error("replacing the 1970 certificate was not reported")
	}
	first := served(t, c)
	if bytes.Equal(first, old) {
		t.Fatal("the certificate that expired in 1980 is still served")
	}
	leaf, _ := x509.ParseCertificate(first)
	if leaf.NotAfter.Year() != 9999 {
		t.Errorf("replacement expires %v", leaf.NotAfter)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !strings.Contains(strings.Join(names, " "), "cert.pem.expired-") {
		t.Errorf("old certificate not kept aside: %v", names)
	}

	c, err = Load(dir, []string{"club.example"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Recovered != nil || !bytes.Equal(served(t, c), first) {
		t.Fatalf("second start replaced the certificate again (%v): members' pinned fingerprint broken", c.Recovered)
	}
}

// A self-signed certificate that is still valid (made by an older xmppd with
// a right clock, ten years) is kept: members pinned its fingerprint.
func TestValidSelfSignedKept(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "club.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		DNSNames: []string{"club.example"},
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	c, err := Load(dir, []string{"club.example"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Recovered != nil || !bytes.Equal(served(t, c), der) {
		t.Fatalf("a valid self-signed certificate was replaced (%v)", c.Recovered)
	}
}
