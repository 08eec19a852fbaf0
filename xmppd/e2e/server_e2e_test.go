//go:build e2e

package e2e

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
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const defaultDomain = "hearth.localhost"

var (
	// backend is "xmppd" (default) or "prosody" (HEARTH_E2E_SERVER=prosody):
	// the second runs the client tests against a server we did not write, to
	// check the tests themselves.
	backend   = "xmppd"
	xmppdBin  string
	buildErr  error
	xmppdHelp string // `xmppd -h` output, to find optional flags
	repoRoot  string
)

func TestMain(m *testing.M) {
	if v := os.Getenv("HEARTH_E2E_SERVER"); v != "" {
		backend = v
	}
	tmp, err := os.MkdirTemp("", "xmppd-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	if backend == "xmppd" {
		xmppdBin = filepath.Join(tmp, "xmppd")
		buildErr = buildXmppd(xmppdBin)
		if buildErr == nil {
			out, _ := exec.Command(xmppdBin, "-h").CombinedOutput()
			xmppdHelp = string(out)
		}
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

func buildXmppd(out string) error {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/xmppd")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GOWORK=off")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./cmd/xmppd: %v\n%s", err, b)
	}
	return nil
}

// hasFlag reports whether `xmppd -h` lists the flag.
func hasFlag(name string) bool {
	return regexp.MustCompile(`(?m)^\s*-` + regexp.QuoteMeta(name) + `\b`).MatchString(xmppdHelp)
}

// freePort returns a loopback address nobody listens on right now.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// server is one running (or stopped) server under test with its own state
// directory and ports; restarts keep both.
type server struct {
	Kind    string
	Dir     string
	Domain  string
	C2S     string // host:port, STARTTLS required
	C2STLS  string // host:port, direct TLS (XEP-0368)
	extra   []string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error // how the last run ended; valid once done is closed
}

type serverOpts struct {
	Domain string
	Args   []string // extra xmppd flags
}

// startServer starts a fresh server for the test and stops it when the test
// ends, printing its log if the test failed.
func startServer(t *testing.T, o serverOpts) *server {
	t.Helper()
	if backend == "xmppd" && buildErr != nil {
		t.Fatalf("xmppd does not build, so nothing can be tested: %v", buildErr)
	}
	if o.Domain == "" {
		o.Domain = defaultDomain
	}
	dir := t.TempDir()
	s := &server{
		Kind:    backend,
		Dir:     dir,
		Domain:  o.Domain,
		C2S:     freePort(t),
		C2STLS:  freePort(t),
		extra:   o.Args,
		logPath: filepath.Join(dir, "server.log"),
	}
	switch backend {
	case "xmppd":
		// Listeners beyond c2s would collide between parallel servers (and
		// with anything on the machine): move whichever the binary offers to
		// free loopback ports.
		for _, f := range []string{"s2s", "http", "https", "web", "turn", "stun", "c2s-ws", "ws"} {
			if hasFlag(f) {
				s.extra = append(s.extra, "-"+f, freePort(t))
			}
		}
	case "prosody":
		if err := s.writeProsodyConfig(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("HEARTH_E2E_SERVER=%q: want xmppd or prosody", backend)
	}
	t.Cleanup(func() {
		s.Stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(s.logPath)
			if len(b) > 12000 {
				b = append([]byte("…\n"), b[len(b)-12000:]...)
			}
			t.Logf("%s log (%s):\n%s", s.Kind, s.logPath, b)
		}
	})
	s.Start(t)
	return s
}

func (s *server) command() *exec.Cmd {
	switch s.Kind {
	case "prosody":
		return exec.Command("prosody", "--config", filepath.Join(s.Dir, "prosody.cfg.lua"), "-F")
	default:
		args := []string{"-state", s.Dir, "-domain", s.Domain, "-c2s", s.C2S, "-c2s-tls", s.C2STLS}
		// HEARTH_E2E_XMPPD_FLAGS runs the whole suite with extra server
		// flags, e.g. "-park-idle=false" to run it without idle parking.
		args = append(args, strings.Fields(os.Getenv("HEARTH_E2E_XMPPD_FLAGS"))...)
		return exec.Command(xmppdBin, append(args, s.extra...)...)
	}
}

// Start (re)starts the server and waits until both c2s ports accept.
func (s *server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		t.Fatalf("server already running")
	}
	lf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(lf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := s.command()
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("start %s: %v", s.Kind, err)
	}
	done := make(chan struct{})
	go func() { s.exitErr = cmd.Wait(); lf.Close(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{s.C2S, s.C2STLS} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				t.Fatalf("%s exited during start-up (%v); log:\n%s", s.Kind, cmd.ProcessState, s.Log())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not listen on %s within 20s; log:\n%s", s.Kind, addr, s.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// ExitErr is how the last run ended (nil: exit status 0).
func (s *server) ExitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitErr
}

// Kill ends the server with SIGKILL: no chance to flush anything.
func (s *server) Kill(t testing.TB) { s.signal(t, syscall.SIGKILL, 10*time.Second) }

// Stop ends the server with SIGTERM (clean shutdown), SIGKILL after 10s.
func (s *server) Stop(t testing.TB) { s.signal(t, syscall.SIGTERM, 10*time.Second) }

func (s *server) signal(t testing.TB, sig syscall.Signal, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, sig)
	select {
	case <-s.done:
	case <-time.After(wait):
		t.Errorf("%s did not exit within %v of %v; killing it", s.Kind, wait, sig)
		if s.Kind == "xmppd" {
			// A Go program prints every goroutine's stack on SIGQUIT:
			// the log then shows where the shutdown hung.
			syscall.Kill(s.cmd.Process.Pid, syscall.SIGQUIT)
			select {
			case <-s.done:
			case <-time.After(3 * time.Second):
			}
		}
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// Log returns the server's output so far.
func (s *server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// CertFile is the certificate the server presents (self-signed for the domain).
func (s *server) CertFile() string { return filepath.Join(s.Dir, "tls", "cert.pem") }

// AddUser creates NAME@domain with the password.
func (s *server) AddUser(t testing.TB, name, password string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	switch s.Kind {
	case "prosody":
		cmd = exec.CommandContext(ctx, "prosodyctl", "--config", filepath.Join(s.Dir, "prosody.cfg.lua"),
			"register", name, s.Domain, password)
	default:
		cmd = exec.CommandContext(ctx, xmppdBin, "-state", s.Dir, "useradd", name, password)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	return name + "@" + s.Domain
}

func (s *server) writeProsodyConfig() error {
	if err := os.MkdirAll(filepath.Join(s.Dir, "data"), 0o700); err != nil {
		return err
	}
	if err := writeSelfSigned(filepath.Join(s.Dir, "tls"), s.Domain); err != nil {
		return err
	}
	_, c2sPort, _ := net.SplitHostPort(s.C2S)
	_, tlsPort, _ := net.SplitHostPort(s.C2STLS)
	cert, key := s.CertFile(), filepath.Join(s.Dir, "tls", "key.pem")
	// Close to xmppd's policy: SCRAM only, TLS required, no s2s.
	disabled := `"PLAIN", "DIGEST-MD5"`
	if os.Getenv("HEARTH_E2E_PROSODY_PLAIN") != "" {
		// For checking the go-sendxmpp test itself: that client knows no SCRAM.
		disabled = `"DIGEST-MD5"`
	}
	cfg := fmt.Sprintf(`-- generated by the hearth e2e tests
run_as_root = true
daemonize = false
pidfile = %[1]q
data_path = %[2]q
log = { { levels = { min = "debug" }, to = "console" } }
admins = { }
modules_enabled = { "disco", "roster", "saslauth", "tls", "private", "vcard", "ping", "time", "version", "smacks", "carbons" }
modules_disabled = { "s2s" }
authentication = "internal_plain"
disable_sasl_mechanisms = { %[8]s }
c2s_require_encryption = true
interfaces = { "127.0.0.1" }
c2s_ports = { %[3]s }
c2s_direct_tls_ports = { %[4]s }
s2s_ports = { }
c2s_stanza_size_limit = 262144
ssl = { certificate = %[5]q, key = %[6]q }
c2s_direct_tls_ssl = { certificate = %[5]q, key = %[6]q }
VirtualHost %[7]q
-- Group chat for the MUC tests (muc_e2e_test.go), like xmppd's
-- groups.<domain>: only local members create rooms, rooms archived.
Component "groups.%[7]s" "muc"
modules_enabled = { "muc_mam" }
restrict_room_creation = "local"
`, filepath.Join(s.Dir, "prosody.pid"), filepath.Join(s.Dir, "data"), c2sPort, tlsPort, cert, key, s.Domain, disabled)
	return os.WriteFile(filepath.Join(s.Dir, "prosody.cfg.lua"), []byte(cfg), 0o600)
}

// writeSelfSigned makes the certificate prosody presents (xmppd makes its own).
func writeSelfSigned(dir, domain string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: domain},
		DNSNames:              []string{domain},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
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
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}

// randomPassword gives each test account its own secret.
func randomPassword(t testing.TB) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("pw-%x", b)
}

// tail returns the last n bytes of b, for failure messages.
func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return "…" + string(b[len(b)-n:])
	}
	return string(b)
}
