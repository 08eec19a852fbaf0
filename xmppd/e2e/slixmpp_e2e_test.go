//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const debianPython = "/usr/bin/python3" // Debian's, which has python3-slixmpp

// scenarioArgs is the command line of testdata/scenarios.py up to the
// scenario name, which the caller appends after any extra flags.
func scenarioArgs(s *server, users ...string) []string {
	_, c2s, _ := net.SplitHostPort(s.C2S)
	_, c2stls, _ := net.SplitHostPort(s.C2STLS)
	args := []string{filepath.Join("testdata", "scenarios.py"),
		"--host", "127.0.0.1", "--c2s", c2s, "--c2s-tls", c2stls, "--domain", s.Domain,
		"--ca", s.CertFile()}
	for _, u := range users {
		args = append(args, "--user", u)
	}
	return args
}

// account creates a user with a fresh password and returns "name:password".
func account(t *testing.T, s *server, name string) string {
	pw := randomPassword(t)
	s.AddUser(t, name, pw)
	return name + ":" + pw
}

// runScenario runs one slixmpp scenario to completion and fails the test
// with the script's own explanation if it does not pass.
func runScenario(t *testing.T, s *server, scenario string, users []string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	args := append(append(scenarioArgs(s, users...), extra...), scenario)
	cmd := exec.CommandContext(ctx, debianPython, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("slixmpp scenario %q: %v\n%s", scenario, err, out)
	} else {
		t.Logf("slixmpp scenario %q:\n%s", scenario, strings.TrimSpace(string(out)))
	}
	return string(out)
}

func TestSlixmpp(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	cases := []struct {
		scenario string
		users    int
	}{
		{"login", 2},
		{"login_default", 1},
		{"wrong_password", 1},
		{"subscribe", 2},
		{"offline", 2},
		{"rosterver", 1},
		{"bind", 1},
		{"disco", 1},
		{"services", 2},
		{"vcard", 2},
		{"private", 2},
		{"fulljid", 2},
	}
	for _, c := range cases {
		t.Run(c.scenario, func(t *testing.T) {
			var users []string
			for i := 0; i < c.users; i++ {
				users = append(users, account(t, s, fmt.Sprintf("%s%d", strings.ReplaceAll(c.scenario, "_", ""), i+1)))
			}
			runScenario(t, s, c.scenario, users)
		})
	}
}

// receiver is a slixmpp client waiting for one message, started in the
// background so another client can send to it.
type receiver struct {
	cmd   *exec.Cmd
	out   strings.Builder
	mu    sync.Mutex
	ready chan string
	done  chan error
}

func startReceiver(t *testing.T, s *server, user, from, body string, direct bool) *receiver {
	t.Helper()
	extra := []string{"--expect", body, "--sender", from, "--wait", "40"}
	if direct {
		extra = append(extra, "--direct")
	}
	args := append(append(scenarioArgs(s, user), extra...), "recv")
	r := &receiver{ready: make(chan string, 1), done: make(chan error, 1)}
	r.cmd = exec.Command(debianPython, args...)
	pr, pw := io.Pipe()
	r.cmd.Stdout, r.cmd.Stderr = pw, pw
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.out.WriteString(line + "\n")
			r.mu.Unlock()
			if strings.HasPrefix(line, "READY") {
				select {
				case r.ready <- line:
				default:
				}
			}
		}
	}()
	go func() { err := r.cmd.Wait(); pw.Close(); r.done <- err }()
	t.Cleanup(func() { r.cmd.Process.Kill() })
	select {
	case <-r.ready:
	case err := <-r.done:
		t.Fatalf("slixmpp receiver exited before logging in (%v):\n%s", err, r.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("slixmpp receiver not logged in after 30s:\n%s", r.output())
	}
	return r
}

func (r *receiver) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

// wait returns nil once the expected message arrived.
func (r *receiver) wait(d time.Duration) error {
	select {
	case err := <-r.done:
		if err != nil {
			return fmt.Errorf("receiver: %v\n%s", err, r.output())
		}
		if !strings.Contains(r.output(), "RECEIVED") {
			return fmt.Errorf("receiver exited without the message:\n%s", r.output())
		}
		return nil
	case <-time.After(d):
		r.cmd.Process.Kill()
		return fmt.Errorf("message not received within %v:\n%s", d, r.output())
	}
}
