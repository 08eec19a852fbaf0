//go:build e2e

package muc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSlixmppRoomsProsody runs testdata/rooms.py against Debian's prosody
// with its MUC component, so that the scenario is checked against a
// server other than ours: what it expects of locking, iqs to occupants
// and voice requests is what Prosody 0.12 does too.
func TestSlixmppRoomsProsody(t *testing.T) {
	for _, bin := range []string{"prosody", "prosodyctl", "/usr/bin/python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed (make test-deps): %v", bin, err)
		}
	}
	const domain = "example.test"
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := selfSigned(cert, key, domain, "groups."+domain); err != nil {
		t.Fatal(err)
	}
	c2s, tls := loopbackPort(t), loopbackPort(t)
	cfg := filepath.Join(dir, "prosody.cfg.lua")
	conf := fmt.Sprintf(`-- written by xmppd/mod/muc's prosody_e2e_test.go
run_as_root = true
daemonize = false
pidfile = %[1]q
data_path = %[2]q
log = { { levels = { min = "info" }, to = "console" } }
modules_enabled = { "disco", "roster", "saslauth", "tls", "vcard", "ping", "version" }
modules_disabled = { "s2s" }
authentication = "internal_plain"
c2s_require_encryption = true
interfaces = { "127.0.0.1" }
c2s_ports = { %[3]s }
c2s_direct_tls_ports = { %[4]s }
s2s_ports = { }
ssl = { certificate = %[5]q, key = %[6]q }
c2s_direct_tls_ssl = { certificate = %[5]q, key = %[6]q }
VirtualHost %[7]q
Component "groups.%[7]s" "muc"
restrict_room_creation = "local"
`, filepath.Join(dir, "prosody.pid"), filepath.Join(dir, "data"), c2s, tls, cert, key, domain)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, u := range []string{"alice", "bob", "carol"} {
		if out, err := exec.CommandContext(ctx, "prosodyctl", "--config", cfg, "register", u, domain, u+"-pw").CombinedOutput(); err != nil {
			t.Fatalf("prosodyctl register %s: %v\n%s", u, err, out)
		}
	}
	logPath := filepath.Join(dir, "prosody.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	logTail := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		return string(b)
	}
	srv := exec.Command("prosody", "--config", cfg, "-F")
	srv.Stdout, srv.Stderr = lf, lf
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-srv.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	// Listening: poll the port, bounded.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+tls, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("prosody exited (%v):\n%s", err, logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prosody did not listen within 20s:\n%s", logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "rooms.py"),
		"--port", tls, "--domain", domain, "--ca", cert)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("slixmpp scenario against prosody: %v\n%s\nprosody's log:\n%s", err, out, logTail())
	}
}

func loopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// selfSigned writes a P-256 certificate for names and its key.
func selfSigned(certPath, keyPath string, names ...string) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}
