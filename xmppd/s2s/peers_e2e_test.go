//go:build e2e

package s2s_test

// Helpers shared by the e2e tests against real peers (hearth2, ejabberd,
// failure paths): run a slixmpp script with a CA bundle, and a box whose
// certificate names other domains than its own.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/s2s"
)

// caBundle writes the certificates of cas to one file, for clients that
// must trust several servers' CAs.
func caBundle(t *testing.T, cas ...*s2s.TestCA) string {
	t.Helper()
	var bundle []byte
	for _, ca := range cas {
		b, err := os.ReadFile(ca.PEMFile)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, b...)
	}
	f := filepath.Join(t.TempDir(), "clients-ca.pem")
	if err := os.WriteFile(f, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// clientSpec is a slixmpp client argument for user on box b.
func (b *box) clientSpec(user string) string {
	return fmt.Sprintf("%s@%s:%s-pw:127.0.0.1:%d:SCRAM-SHA-256", user, b.domain, user, b.d.C2SAddr.(*net.TCPAddr).Port)
}

// runPy runs a script of testdata with Debian's python (slixmpp) and
// fails the test unless it prints OK.
func runPy(t *testing.T, limit time.Duration, script string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out, err := exec.CommandContext(ctx, debianPython, append([]string{filepath.Join("testdata", script)}, args...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// startNamed is world.start with a certificate (from the test CA) for
// names instead of the box's own domains: a box with a wrong-name
// certificate.
func (w *world) startNamed(t *testing.T, domain string, names []string, tune func(*s2s.Config)) *box {
	t.Helper()
	b := &box{domain: domain, log: &logBuf{t: t}}
	b.d = xmpptest.Start(t, func(o *xmppd.Options) {
		o.Domain = domain
		tls := o.State.TLS()
		w.ca.Issue(t, filepath.Join(tls, "cert.pem"), filepath.Join(tls, "key.pem"), names...)
		o.S2S = xmppd.S2SOptions{Listen: "127.0.0.1:0", Resolver: w.dns.Addr, CAFile: w.ca.PEMFile, AllowLocal: true,
			Tune: func(c *s2s.Config) {
				c.Log = slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
				if tune != nil {
					tune(c)
				}
			}}
	})
	port := b.d.S2SAddr().(*net.TCPAddr).Port
	w.dns.Host(t, "xmpp."+domain, "127.0.0.1")
	for _, d := range []string{domain, "groups." + domain} {
		w.dns.Replace(t, s2s.SRVRecord("xmpp-server", d, 0, 0, port, "xmpp."+domain))
	}
	return b
}

// waitLog waits until b's federation log has s.
func (b *box) waitLog(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !b.log.has(s) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: log never had %q", b.domain, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
