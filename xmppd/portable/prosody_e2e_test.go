//go:build e2e

package portable_test

import (
	"bytes"
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

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/portable"
	"github.com/hearthchat/hearth/xmppd/store"
)

// TestProsodyRoundTrip moves an account from Debian's prosody to Hearth
// and back, through prosody-migrator's XEP-0227 store:
//
//	slixmpp fills juliet's account on prosody (roster with groups and a
//	pending request, vCard, private XML, an avatar in PEP, three archived
//	messages) →
//	prosody-migrator internal → xep0227 → portable.Import → slixmpp logs
//	in to Hearth with the same password and finds it all →
//	portable.Export → prosody-migrator xep0227 → internal → a fresh
//	prosody → slixmpp finds it all there too.
//
// Prosody keeps SCRAM-SHA-1 verifiers only (password_hash "SHA-1"), so
// the account moved here logs in with SCRAM-SHA-1.
func TestProsodyRoundTrip(t *testing.T) {
	for _, bin := range []string{"prosody", "prosodyctl", "lua5.4", "/usr/bin/prosody-migrator", "/usr/bin/python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed (make test-deps): %v", bin, err)
		}
	}
	const domain = xmpptest.Domain
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := selfSigned(cert, key, domain); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()

	data1 := filepath.Join(dir, "data1")
	cfg1, port1 := prosodyConfig(t, dir, "p1", data1, cert, key, domain)
	for _, u := range []string{"juliet", "romeo"} {
		if out, err := exec.CommandContext(ctx, "prosodyctl", "--config", cfg1, "register", u, domain, u+"-pw").CombinedOutput(); err != nil {
			t.Fatalf("prosodyctl register %s: %v\n%s", u, err, out)
		}
	}
	stop := startProsody(t, dir, "p1", cfg1, port1)
	account(t, ctx, "fill", port1, domain, cert)
	stop()

	// prosody → XEP-0227 files.
	pie := filepath.Join(dir, "pie")
	migrate(t, ctx, dir, pie, fmt.Sprintf(`input { type = "internal"; path = %q; hosts = { [%q] = { "accounts", "roster", "vcard", "private", "pep-pubsub", "archive-archive" } } }
output { type = "xep0227" }
`, data1, domain), false)
	doc, err := os.ReadFile(filepath.Join(pie, "juliet@"+domain+".xml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prosody's document: %d bytes", len(doc))

	// → Hearth (the store written while no server runs, as `xmppd import`).
	sd := state.Dir(filepath.Join(dir, "hearth"))
	if err := sd.Ensure(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(sd.DB())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := portable.Import(st, domain, bytes.NewReader(doc), portable.Options{})
	st.Close()
	if err != nil {
		t.Fatalf("import of prosody's document: %v\n%s", err, doc)
	}
	t.Logf("imported: %+v", rep)
	d := xmpptest.Start(t, func(o *xmppd.Options) { o.State = sd })
	xmpptest.Slixmpp(t, d, sd, "account.py", 40*time.Second, "check")

	// Hearth → XEP-0227 → a fresh prosody.
	back := filepath.Join(dir, "back")
	os.MkdirAll(back, 0o700)
	var out bytes.Buffer
	if err := portable.Export(d.Store, domain, []string{"juliet"}, &out); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(back, "juliet@"+domain+".xml"), out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	data2 := filepath.Join(dir, "data2")
	os.MkdirAll(data2, 0o700)
	migrate(t, ctx, dir, back, fmt.Sprintf(`input { type = "xep0227"; hosts = { [%q] = { "accounts", "roster", "vcard", "private", "pep-pubsub", "archive-archive" } } }
output { type = "internal"; path = %q }
`, domain, data2), true)
	cfg2, port2 := prosodyConfig(t, dir, "p2", data2, cert, key, domain)
	defer startProsody(t, dir, "p2", cfg2, port2)()
	account(t, ctx, "check", port2, domain, cert)
}

// migrate runs prosody-migrator with cfg, its XEP-0227 files in pieDir.
// The xep0227 store reads and writes its files in prosody's data
// directory, which the migrator takes from the CFG_DATADIR its launcher
// sets: a copy of the launcher in the test's directory names pieDir.
//
// Reading XEP-0227 files, the migrator also asks the xep0227 store for the
// host's own archive, which it does not have ("no 227 user element
// found", prosody 0.12.3): keepGoing passes --keep-going, and only an
// error about a user's data fails the test.
func migrate(t *testing.T, ctx context.Context, dir, pieDir, cfg string, keepGoing bool) {
	t.Helper()
	if err := os.MkdirAll(pieDir, 0o700); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("/usr/bin/prosody-migrator")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, "CFG_DATADIR=") {
			lines[i], found = fmt.Sprintf("CFG_DATADIR=%q;", pieDir), true
		}
	}
	if !found {
		t.Fatal("prosody-migrator sets no CFG_DATADIR")
	}
	launcher, cfgPath := filepath.Join(dir, "migrator.lua"), filepath.Join(dir, "migrator.cfg.lua")
	if err := os.WriteFile(launcher, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := []string{launcher, "--root", "--config", cfgPath}
	if keepGoing {
		argv = append(argv, "--keep-going")
	}
	out, err := exec.CommandContext(ctx, "lua5.4", append(argv, "input", "output")...).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("for user")) && bytes.Contains(out, []byte("rror")) || !keepGoing && bytes.Contains(out, []byte("rror")) {
		t.Fatalf("prosody-migrator: %v\n%s", err, out)
	}
}

func account(t *testing.T, ctx context.Context, phase, port, domain, ca string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "account.py"), phase,
		"--port", port, "--domain", domain, "--ca", ca).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("account.py %s against prosody: %v\n%s", phase, err, out)
	}
}

func prosodyConfig(t *testing.T, dir, name, data, cert, key, domain string) (cfg, tlsPort string) {
	t.Helper()
	c2s, tls := loopbackPort(t), loopbackPort(t)
	cfg = filepath.Join(dir, name+".cfg.lua")
	conf := fmt.Sprintf(`-- written by xmppd/portable's prosody_e2e_test.go
run_as_root = true
daemonize = false
pidfile = %[1]q
data_path = %[2]q
log = { { levels = { min = "info" }, to = "console" } }
modules_enabled = { "disco", "roster", "saslauth", "tls", "vcard", "private", "pep", "mam", "ping" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
default_archive_policy = true
c2s_require_encryption = true
interfaces = { "127.0.0.1" }
c2s_ports = { %[3]s }
c2s_direct_tls_ports = { %[4]s }
s2s_ports = { }
ssl = { certificate = %[5]q, key = %[6]q }
c2s_direct_tls_ssl = { certificate = %[5]q, key = %[6]q }
VirtualHost %[7]q
`, filepath.Join(dir, name+".pid"), data, c2s, tls, cert, key, domain)
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, tls
}

// startProsody runs prosody until the returned stop is called (or the
// test ends), once it listens on port.
func startProsody(t *testing.T, dir, name, cfg, port string) (stop func()) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
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
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		syscall.Kill(-srv.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		lf.Close()
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			c.Close()
			return stop
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
