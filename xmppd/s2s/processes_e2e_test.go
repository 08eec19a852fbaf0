//go:build e2e

package s2s_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/s2s"
)

// buildXmppd builds cmd/xmppd into the test's temporary directory (Go's
// build cache makes the second build quick).
func buildXmppd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xmppd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/xmppd")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/xmppd: %v\n%s", err, out)
	}
	return bin
}

// procBox is an xmppd process serving domain on loopback, federating
// through the test zone, with a certificate from the test CA and
// accounts users (password USER-pw).
type procBox struct {
	domain string
	c2s    int
}

func (w *world) startProcess(t *testing.T, bin, domain string, users ...string) *procBox {
	t.Helper()
	dir := t.TempDir()
	w.ca.Issue(t, filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem"), domain, "groups."+domain, "upload."+domain)
	for _, u := range users {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, "-state", dir, "useradd", u, u+"-pw").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s useradd %s: %v\n%s", domain, u, err, out)
		}
	}
	c2s, c2sTLS, s2sPort := freePort(t), freePort(t), freePort(t)
	cmd := exec.Command(bin, "-state", dir, "-domain", domain,
		"-c2s", "127.0.0.1:"+strconv.Itoa(c2s), "-c2s-tls", "127.0.0.1:"+strconv.Itoa(c2sTLS), "-c2s-onion", "none",
		"-web", "none", "-web-tls", "none", "-turn", "none", "-proxy65", "none",
		"-s2s", "127.0.0.1:"+strconv.Itoa(s2sPort), "-s2s-dns", w.dns.Addr, "-s2s-ca", w.ca.PEMFile, "-s2s-allow-local", "-debug")
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
			t.Logf("%s output (tail):\n%s", domain, tailLines(out.String(), 200))
		}
	})
	// Every port: federation listens before the clients' ports do.
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range []int{s2sPort, c2s, c2sTLS} {
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) || cmd.ProcessState != nil {
				t.Fatalf("%s not listening on %d: %v\n%s", domain, port, err, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	w.dns.Host(t, "xmpp."+domain, "127.0.0.1")
	for _, d := range []string{domain, "groups." + domain} {
		w.dns.Replace(t, s2s.SRVRecord("xmpp-server", d, 0, 0, s2sPort, "xmpp."+domain))
	}
	return &procBox{domain: domain, c2s: c2s}
}

func (b *procBox) clientSpec(user string) string {
	return fmt.Sprintf("%s@%s:%s-pw:127.0.0.1:%d:SCRAM-SHA-256", user, b.domain, user, b.c2s)
}

// TestHearthToHearth's scenario with each Hearth its own xmppd process, started as
// on the box but on loopback (cmd/xmppd's -s2s, -s2s-dns, -s2s-ca,
// -s2s-allow-local): nothing shared but the test zone and the CA.
func TestHearthProcesses(t *testing.T) {
	w := newWorld(t)
	bin := buildXmppd(t)
	h1 := w.startProcess(t, bin, "hearth.test", "alice")
	h2 := w.startProcess(t, bin, "hearth2.test", "bob", "carol")
	runPy(t, 90*time.Second, "across.py", "--ca", caBundle(t, w.ca),
		"--client", h1.clientSpec("alice"), "--client", h2.clientSpec("bob"), "--client", h2.clientSpec("carol"),
		"--room", "across@groups.hearth.test")
}
