package acme

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/tlsconf"
)

func newTest(t *testing.T, o Options) *Manager {
	t.Helper()
	if o.Domain == "" {
		o.Domain = "club.example"
	}
	if o.State == "" {
		o.State = state.Dir(t.TempDir())
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func TestNew(t *testing.T) {
	names := []string{"Club.Example.", "GROUPS.club.example"}
	m := newTest(t, Options{Domain: "Club.Example.", Names: names})
	if names[0] != "Club.Example." || !slices.Equal(m.Names(), []string{"club.example", "groups.club.example"}) {
		t.Errorf("names %v, caller's %v", m.Names(), names)
	}
	m = newTest(t, Options{Domain: "Club.Example."})
	if want := []string{"club.example", "groups.club.example", "upload.club.example"}; !slices.Equal(m.Names(), want) {
		t.Errorf("names %v", m.Names())
	}
	if len(m.issuers) != 1 || m.issuers[0].kind != "http-01/tls-alpn-01" {
		t.Errorf("issuers %+v", m.issuers)
	}
	st := state.Dir(t.TempDir())
	for name, o := range map[string]Options{
		"no domain":      {State: st},
		"no state":       {Domain: "a.example"},
		"dns-01 w/o dns": {Domain: "a.example", State: st, Challenges: []Challenge{DNS01}},
		"bad addr":       {Domain: "a.example", State: st, HTTPAddr: "80"},
		"home name":      {Domain: "hearth.local", State: st},
		"onion":          {Domain: "abc.onion", State: st},
		"no dot":         {Domain: "hearth", State: st},
		"hosts differ":   {Domain: "a.example", State: st, HTTPAddr: "127.0.0.1:80", TLSAddr: "127.0.0.2:443"},
	} {
		if m, err := New(o); err == nil {
			m.Close()
			t.Errorf("%s: no error", name)
		}
	}
}

// testCert writes cert.pem/key.pem for names, signed by a fresh CA (or
// self-signed), valid from nb to na.
func testCert(t *testing.T, dir string, selfSigned bool, nb, na time.Time, names ...string) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: nb, NotAfter: na, DNSNames: names}
	parent, signer := tmpl, any(key)
	if !selfSigned {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		parent = &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
			NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		signer = caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestCurrent(t *testing.T) {
	now := time.Now()
	all := []string{"club.example", "groups.club.example", "upload.club.example"}
	for _, tc := range []struct {
		name       string
		selfSigned bool
		nb, na     time.Time
		names      []string
		keep       bool
	}{
		{"CA-issued", false, now.Add(-time.Hour), now.Add(90 * 24 * time.Hour), all, true},
		{"self-signed", true, now.Add(-time.Hour), now.Add(90 * 24 * time.Hour), all, false},
		{"expired", false, now.Add(-48 * time.Hour), now.Add(-time.Hour), all, false},
		{"missing a name", false, now.Add(-time.Hour), now.Add(90 * 24 * time.Hour), all[:2], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTest(t, Options{})
			testCert(t, m.o.State.TLS(), tc.selfSigned, tc.nb, tc.na, tc.names...)
			if got := m.current(); (got != nil) != tc.keep {
				t.Errorf("current() = %v, want kept=%v", got, tc.keep)
			}
		})
	}
	// xmppd's own fallback certificate is recognised as self-signed.
	m := newTest(t, Options{})
	os.MkdirAll(m.o.State.TLS(), 0o700)
	if err := tlsconf.SelfSigned(m.certPath(), m.keyPath(), all); err != nil {
		t.Fatal(err)
	}
	if m.current() != nil {
		t.Error("xmppd's self-signed certificate kept")
	}
}

func TestInstall(t *testing.T) {
	m := newTest(t, Options{})
	now := time.Now()
	// A chain for some other key must be refused and leave the files alone.
	other := testCert(t, t.TempDir(), false, now.Add(-time.Hour), now.Add(time.Hour), m.names...)
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Raw})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := m.install(chain, key); err == nil {
		t.Fatal("installed a certificate for another key")
	}
	if _, err := os.Stat(m.certPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("files written after a refused install")
	}

	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: m.names}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"}, NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	leaf, err := m.install(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(m.keyPath()); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode().Perm())
	}
	if got := m.current(); got == nil || got.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("current after install: %v", got)
	}
	left, _ := filepath.Glob(filepath.Join(m.o.State.TLS(), ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestRenewAt(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(90 * 24 * time.Hour)}
	m := &Manager{}
	if got := m.renewAt(leaf); !got.Equal(nb.Add(60 * 24 * time.Hour)) {
		t.Errorf("renewAt %v", got)
	}
	m.o.RenewBefore = 10 * 24 * time.Hour
	if got := m.renewAt(leaf); !got.Equal(nb.Add(80 * 24 * time.Hour)) {
		t.Errorf("renewAt %v", got)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want reason
	}{
		{fmt.Errorf("x: %w", acme.Problem{Type: acme.ProblemTypeRateLimited}), rateLimited},
		{acme.Problem{Status: 429}, rateLimited},
		{fmt.Errorf("x: %w", acme.Problem{Type: acme.ProblemTypeConnection}), notReached},
		{errors.New("authorization failed: HTTP 403 urn:ietf:params:acme:error:unauthorized - bad token"), notReached},
		{acme.Problem{Type: acme.ProblemTypeCAA}, refused},
		{acme.Problem{Type: acme.ProblemTypeServerInternal}, caTrouble},
		{acme.Problem{Status: 503}, caTrouble},
		{&url.Error{Op: "Get", URL: "https://ca/dir", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, unreachable},
		{errors.New("something else"), other},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.err, got, tc.want)
		}
	}
}

// A crash between replacing the key and the certificate is finished on
// the next start; a crash before the key was replaced is rolled back.
func TestRecoverPending(t *testing.T) {
	now := time.Now()
	m := newTest(t, Options{})
	testCert(t, m.o.State.TLS(), false, now.Add(-time.Hour), now.Add(time.Hour), m.names...)
	oldCert, _ := os.ReadFile(m.certPath())

	// New pair prepared elsewhere.
	nd := t.TempDir()
	testCert(t, nd, false, now.Add(-time.Hour), now.Add(time.Hour), m.names...)
	newKey, _ := os.ReadFile(filepath.Join(nd, "key.pem"))
	newCert, _ := os.ReadFile(filepath.Join(nd, "cert.pem"))

	// Crash before the key was replaced: old pair stays, .next goes.
	os.WriteFile(m.certPath()+".next", newCert, 0o644)
	m.recoverPending()
	if m.current() == nil || !bytesEqualFile(t, m.certPath(), oldCert) {
		t.Fatal("old pair not kept")
	}
	if _, err := os.Stat(m.certPath() + ".next"); err == nil {
		t.Fatal(".next left behind")
	}

	// Crash after the key was replaced: the new certificate goes in.
	os.WriteFile(m.certPath()+".next", newCert, 0o644)
	os.WriteFile(m.keyPath(), newKey, 0o600)
	m.recoverPending()
	if !bytesEqualFile(t, m.certPath(), newCert) || m.current() == nil {
		t.Fatal("new pair not completed")
	}
}

func bytesEqualFile(t *testing.T, path string, want []byte) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	return err == nil && string(b) == string(want)
}
