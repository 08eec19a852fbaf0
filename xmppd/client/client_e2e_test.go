//go:build e2e

package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/internal/testenv"
)

func freeAddr(t *testing.T) (string, int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String(), l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, addr string, cmd *exec.Cmd) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s never listened on %s", cmd.Path, addr)
}

func startCmd(t *testing.T, dir string, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Logf("server log:\n%s", b)
		}
	})
	return cmd
}

// roundTrip logs two sessions in and sends a message from one to the other.
func roundTrip(t *testing.T, cfg Config) {
	t.Helper()
	ctx := context.Background()
	a, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer a.Close()
	cfg.Resource = "second"
	cfg.Register = false
	b, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial second: %v", err)
	}
	defer b.Close()
	if !strings.HasPrefix(a.JID(), cfg.User+"@"+cfg.Domain+"/") {
		t.Fatalf("bound JID %q", a.JID())
	}
	msg := fmt.Sprintf("<message type='chat' to='%s' id='e2e'><body>round &amp; trip</body></message>", b.JID())
	if err := a.Send([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		st, err := b.ReadStanza()
		if err != nil {
			t.Fatalf("waiting for the message: %v", err)
		}
		if Name(st) == "message" {
			if !bytes.Contains(st, []byte("round &amp; trip")) || !bytes.Contains(st, []byte(a.JID())) {
				t.Fatalf("got %q", st)
			}
			return
		}
	}
}

const prosodyCfg = `run_as_root = true
daemonize = false
pidfile = "%[1]s/prosody.pid"
data_path = "%[1]s/data"
certificates = "%[1]s"
log = { warn = "%[1]s/prosody.log" }
interfaces = { "127.0.0.1" }
c2s_ports = { %[2]d }
c2s_direct_tls_ports = { %[3]d }
s2s_ports = { }
http_ports = { }
https_ports = { }
authentication = "internal_hashed"
password_hash = "%[4]s"
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "register"; }
modules_disabled = { "s2s"; }
allow_registration = true
VirtualHost "client.localhost"
	-- direct TLS finds client.localhost.crt/.key in "certificates" by SNI
	ssl = { certificate = "%[1]s/client.localhost.crt"; key = "%[1]s/client.localhost.key"; }
`

// TestProsody is the real-peer test of Dial: Debian's prosody with
// STARTTLS and direct TLS, in-band registration, both SCRAM hashes.
func TestProsody(t *testing.T) {
	testenv.NeedCommand(t, "prosody", "apt package prosody; make test-deps installs it")
	for _, hash := range []string{"SHA-256", "SHA-1"} {
		t.Run(hash, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "data"), 0o700)
			out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
				"-nodes", "-keyout", filepath.Join(dir, "client.localhost.key"), "-out", filepath.Join(dir, "client.localhost.crt"),
				"-days", "1", "-subj", "/CN=client.localhost", "-addext", "subjectAltName=DNS:client.localhost").CombinedOutput()
			if err != nil {
				t.Fatalf("openssl: %v\n%s", err, out)
			}
			addr, port := freeAddr(t)
			tlsAddr, tlsPort := freeAddr(t)
			cfgPath := filepath.Join(dir, "prosody.cfg.lua")
			os.WriteFile(cfgPath, []byte(fmt.Sprintf(prosodyCfg, dir, port, tlsPort, hash)), 0o600)
			cmd := startCmd(t, dir, "prosody", "--config", cfgPath, "-F")
			waitListening(t, addr, cmd)
			waitListening(t, tlsAddr, cmd)
			want := ScramSHA256
			if hash == "SHA-1" {
				want = ScramSHA1
			}
			cfg := Config{Addr: addr, Domain: "client.localhost", User: "alice", Password: "pw-" + hash,
				Resource: "first", Register: true, TLS: &tls.Config{InsecureSkipVerify: true}, Timeout: 10 * time.Second}
			roundTrip(t, cfg)

			cfg.Register = false
			cfg.Addr, cfg.DirectTLS = tlsAddr, true
			c, err := Dial(context.Background(), cfg)
			if err != nil {
				t.Fatalf("direct TLS: %v", err)
			}
			if c.Mechanism() != want {
				t.Errorf("mechanism %q, want %q", c.Mechanism(), want)
			}
			c.Close()

			cfg.Password = "wrong"
			_, err = Dial(context.Background(), cfg)
			var xe *Error
			if !errors.As(err, &xe) || xe.Stage != "auth" || xe.Condition != "not-authorized" {
				t.Fatalf("wrong password: %v", err)
			}
		})
	}
}

// TestHearth runs the same round trip against our own xmppd.
func TestHearth(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "xmppd")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/xmppd").CombinedOutput(); err != nil {
		t.Fatalf("build xmppd: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "state")
	if out, err := exec.Command(bin, "-state", state, "-domain", "client.localhost", "useradd", "alice", "pw-hearth").CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	addr, _ := freeAddr(t)
	tlsAddr, _ := freeAddr(t)
	cmd := startCmd(t, dir, bin, "-state", state, "-domain", "client.localhost", "-c2s", addr, "-c2s-tls", tlsAddr)
	waitListening(t, addr, cmd)
	waitListening(t, tlsAddr, cmd)
	cfg := Config{Addr: addr, Domain: "client.localhost", User: "alice", Password: "pw-hearth",
		Resource: "first", TLS: &tls.Config{InsecureSkipVerify: true}, Timeout: 10 * time.Second}
	roundTrip(t, cfg)
	for _, mech := range []string{ScramSHA256, ScramSHA1} {
		cfg.Addr, cfg.DirectTLS, cfg.Mechanism, cfg.Resource = tlsAddr, true, mech, "d"+mech
		c, err := Dial(context.Background(), cfg)
		if err != nil {
			t.Fatalf("direct TLS with %s: %v", mech, err)
		}
		c.Close()
	}
}
