//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGoSendxmpp: Debian's go-sendxmpp (a Go client built on a different
// XMPP library than ours) sends a message that slixmpp receives, over
// STARTTLS and over direct TLS.
func TestGoSendxmpp(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go-sendxmpp"); err != nil {
		t.Fatalf("go-sendxmpp not installed (make test-deps): %v", err)
	}
	// Debian's go-sendxmpp speaks only PLAIN: the server allows it with
	// -allow-plain (off by default), over TLS only.
	s := startServer(t, serverOpts{Args: []string{"-allow-plain"}})
	for _, tc := range []struct {
		name   string
		addr   string
		direct bool
	}{
		{"starttls", s.C2S, false},
		{"direct-tls", s.C2STLS, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			senderPw := randomPassword(t)
			sender := s.AddUser(t, "gsx"+strings.ReplaceAll(tc.name, "-", ""), senderPw)
			rcpt := account(t, s, "gsxrecv"+strings.ReplaceAll(tc.name, "-", ""))
			body := "hello from go-sendxmpp over " + tc.name
			r := startReceiver(t, s, rcpt, sender, body, false)

			home := t.TempDir() // no real ~/.config/go-sendxmpp
			args := []string{"-u", sender, "-p", senderPw, "-j", tc.addr, "-n", "--timeout", "10"}
			if tc.direct {
				args = append(args, "-t")
			}
			args = append(args, strings.SplitN(rcpt, ":", 2)[0]+"@"+s.Domain)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go-sendxmpp", args...)
			cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
			cmd.Stdin = strings.NewReader(body + "\n")
			out, err := cmd.CombinedOutput()
			if err != nil {
				hint := ""
				if strings.Contains(string(out), "PLAIN authentication is not an option") {
					hint = "\n(go-sendxmpp 0.5.6 in Debian 12 authenticates only with PLAIN, DIGEST-MD5 or X-OAUTH2, no SCRAM; it needs SASL PLAIN over TLS)"
				}
				t.Fatalf("go-sendxmpp %s: %v\n%s%s", strings.Join(redact(args, senderPw), " "), err, out, hint)
			}
			if err := r.wait(20 * time.Second); err != nil {
				t.Errorf("slixmpp did not receive go-sendxmpp's message: %v", err)
			}
		})
	}
}

func redact(args []string, secret string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, secret, "****")
	}
	return out
}
