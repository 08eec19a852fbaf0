//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tmuxTerm runs one interactive program in a private tmux server (its own
// socket, so no real tmux session is touched) and reads its screen.
type tmuxTerm struct {
	t    *testing.T
	sock string
}

func newTmux(t *testing.T, env []string, command ...string) *tmuxTerm {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux not installed (make test-deps): %v", err)
	}
	m := &tmuxTerm{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	args := []string{"new-session", "-d", "-s", "e2e", "-x", "220", "-y", "50"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, command...)
	if out, err := m.tmux(args...); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	t.Cleanup(func() { m.tmux("kill-server") })
	return m
}

func (m *tmuxTerm) tmux(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "tmux", append([]string{"-S", m.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// typeLine types text literally, then Enter.
func (m *tmuxTerm) typeLine(text string) {
	m.t.Helper()
	if out, err := m.tmux("send-keys", "-t", "e2e", "-l", text); err != nil {
		m.t.Fatalf("tmux send-keys: %v\n%s", err, out)
	}
	if out, err := m.tmux("send-keys", "-t", "e2e", "Enter"); err != nil {
		m.t.Fatalf("tmux send-keys Enter: %v\n%s", err, out)
	}
}

func (m *tmuxTerm) screen() string {
	out, _ := m.tmux("capture-pane", "-p", "-J", "-t", "e2e", "-S", "-500")
	return out
}

// waitFor polls the screen until re matches (returns the screen) or d passes.
func (m *tmuxTerm) waitFor(what string, re *regexp.Regexp, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		sc := m.screen()
		if re.MatchString(sc) {
			return sc, nil
		}
		if time.Now().After(deadline) {
			return sc, fmt.Errorf("profanity: %s did not appear within %v (looking for /%s/); screen:\n%s", what, d, re, sc)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestProfanity: profanity (libstrophe) logs in through a real terminal,
// accepts the self-signed certificate and sends a message that slixmpp
// receives.
func TestProfanity(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("profanity"); err != nil {
		t.Fatalf("profanity not installed (make test-deps): %v", err)
	}
	s := startServer(t, serverOpts{})
	for _, tc := range []struct{ name, addr, tls string }{
		{"starttls", s.C2S, "force"},
		// libstrophe's "legacy" TLS is direct TLS on connect (XEP-0368's port).
		{"direct-tls", s.C2STLS, "legacy"},
	} {
		t.Run(tc.name, func(t *testing.T) { profanitySends(t, s, tc.name, tc.addr, tc.tls) })
	}
}

func profanitySends(t *testing.T, s *server, name, addr, tlsMode string) {
	suffix := strings.ReplaceAll(name, "-", "")
	pw := randomPassword(t)
	jid := s.AddUser(t, "prof"+suffix, pw)
	rcpt := account(t, s, "profrecv"+suffix)
	body := "hello from profanity over " + name
	r := startReceiver(t, s, rcpt, jid, body, false)

	home := t.TempDir()
	env := []string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
		"XDG_STATE_HOME=" + filepath.Join(home, "state"),
		"TERM=xterm-256color",
		"LANG=C.UTF-8",
	}
	for _, d := range []string{"config/profanity", "data", "cache", "state"} {
		os.MkdirAll(filepath.Join(home, d), 0o700)
	}
	logf := filepath.Join(home, "profanity-debug")
	m := newTmux(t, env, "profanity", "-l", "DEBUG", "-f", logf)
	t.Cleanup(func() {
		if t.Failed() {
			filepath.WalkDir(home, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(p, ".log") {
					b, _ := os.ReadFile(p)
					t.Logf("profanity log %s:\n%s", p, tail(b, 6000))
				}
				return nil
			})
		}
	})
	if _, err := m.waitFor("the start screen", regexp.MustCompile(`(?i)profanity`), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	m.typeLine(fmt.Sprintf("/connect %s server 127.0.0.1 port %s tls %s", jid, port, tlsMode))
	if _, err := m.waitFor("the password prompt", regexp.MustCompile(`(?i)enter password`), 15*time.Second); err != nil {
		t.Fatal(err)
	}
	m.typeLine(pw)

	// The certificate is self-signed: profanity asks; allow it for this session.
	loggedIn := regexp.MustCompile(`(?i)logged in successfully`)
	sc, err := m.waitFor("the certificate question or the login", regexp.MustCompile(`(?i)/tls allow|logged in successfully|login failed|disconnected`), 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sc, "/tls allow") && !loggedIn.MatchString(sc) {
		t.Logf("profanity asked about the self-signed certificate; answering /tls allow")
		m.typeLine("/tls allow")
	}
	if sc, err = m.waitFor("the login", regexp.MustCompile(`(?i)logged in successfully|login failed|disconnected|connection failed`), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if !loggedIn.MatchString(sc) {
		t.Fatalf("profanity did not log in; screen:\n%s", sc)
	}
	m.typeLine(fmt.Sprintf("/msg %s %s", strings.SplitN(rcpt, ":", 2)[0]+"@"+s.Domain, body))
	if err := r.wait(20 * time.Second); err != nil {
		t.Errorf("slixmpp did not receive profanity's message: %v\nprofanity screen:\n%s", err, m.screen())
	}
	m.typeLine("/quit")
}
