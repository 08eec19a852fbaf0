//go:build e2e

package s2s_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 14's "push notifications to the apps' push services": the app
// server is on another domain — slixmpp's ComponentXMPP as
// push.prosody.test on Debian's prosody (XEP-0114), the way Conversations'
// and Monal's app servers are components of their own servers — and
// Hearth's push module (xmppd/mod/push) reaches it only over s2s.
// testdata/push_remote.py: alice's phone enables push with it and
// hibernates; bob's message to her must reach the app server as a
// summary, without the body.
func TestPushToRemoteAppServer(t *testing.T) {
	w := newWorld(t)
	b := make([]byte, 16)
	rand.Read(b)
	secret := hex.EncodeToString(b)
	cport := freePort(t)
	startProsody(t, w, w.ca, false, fmt.Sprintf(`component_ports = { %d }
component_interfaces = { "127.0.0.1" }
Component "push.prosody.test" { component_secret = %q }`, cport, secret))
	// Its s2s is prosody's (a component speaks s2s through its server).
	w.dns.SRV(t, "xmpp-server", "push.prosody.test", 0, 0, prosodyS2SPort(t, w), "xmpp.prosody.test")
	hearth := w.start(t, "hearth.test", nil, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "push_remote.py"),
		"--port", strconv.Itoa(hearth.d.C2SAddr.(*net.TCPAddr).Port), "--domain", "hearth.test", "--ca", caBundle(t, w.ca),
		"--app", "push.prosody.test", "--component", strconv.Itoa(cport), "--secret", secret)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(&out, line)
		if line == "HIBERNATING? alice" {
			ans := "no\n"
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if s := hearth.d.Server.Router.Session("alice", "phone"); s != nil && s.Detached() {
					ans = "yes\n"
					break
				}
			}
			io.WriteString(stdin, ans)
		}
	}
	err = <-done
	if err != nil || !strings.Contains("\n"+out.String(), "\nOK\n") {
		t.Fatalf("push_remote.py: %v\n%s", err, out.String())
	}
	t.Logf("push to push.prosody.test in %v", time.Since(start).Round(time.Millisecond))
	if !hearth.log.has(`msg="s2s: connected out" domain=push.prosody.test from=hearth.test`) {
		t.Error("the publish did not go out on a stream to push.prosody.test")
	}
}
