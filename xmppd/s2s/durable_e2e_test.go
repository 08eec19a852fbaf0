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

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/s2s"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// xmppdProc is one cmd/xmppd process on a state directory and fixed
// ports, so that it can be killed and started again as the same server.
type xmppdProc struct {
	bin, dir, domain     string
	dns, ca              string // the test zone's server and the test CA's PEM file
	c2s, c2sTLS, s2sPort int
	cmd                  *exec.Cmd
	out                  *bytes.Buffer
	exited               chan struct{}
}

func (w *world) newProc(t *testing.T, bin, domain string, users ...string) *xmppdProc {
	t.Helper()
	p := &xmppdProc{bin: bin, dir: t.TempDir(), domain: domain, dns: w.dns.Addr, ca: w.ca.PEMFile, c2s: freePort(t), c2sTLS: freePort(t), s2sPort: freePort(t)}
	w.ca.Issue(t, filepath.Join(p.dir, "tls", "cert.pem"), filepath.Join(p.dir, "tls", "key.pem"), domain, "groups."+domain, "upload."+domain)
	for _, u := range users {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, bin, "-state", p.dir, "useradd", u, u+"-pw").CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("%s useradd %s: %v\n%s", domain, u, err, out)
		}
	}
	w.dns.Host(t, "xmpp."+domain, "127.0.0.1")
	for _, d := range []string{domain, "groups." + domain} {
		w.dns.Replace(t, s2s.SRVRecord("xmpp-server", d, 0, 0, p.s2sPort, "xmpp."+domain))
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *xmppdProc) start(t *testing.T) {
	t.Helper()
	p.out = new(bytes.Buffer)
	p.cmd = exec.Command(p.bin, "-state", p.dir, "-domain", p.domain,
		"-c2s", "127.0.0.1:"+strconv.Itoa(p.c2s), "-c2s-tls", "127.0.0.1:"+strconv.Itoa(p.c2sTLS), "-c2s-onion", "none",
		"-web", "none", "-web-tls", "none", "-turn", "none", "-proxy65", "none",
		"-s2s", "127.0.0.1:"+strconv.Itoa(p.s2sPort), "-s2s-dns", p.dns, "-s2s-ca", p.ca, "-s2s-allow-local", "-debug")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, ch chan struct{}) { cmd.Wait(); close(ch) }(p.cmd, p.exited)
	// Ready once every port listens: xmppd starts federation before the
	// clients' listeners (so that a member's first message to another
	// server does not bounce remote-server-not-found), so the s2s port
	// alone says nothing about the c2s ports — a CI run dialled c2s-tls
	// in between and was refused.
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range []int{p.s2sPort, p.c2s, p.c2sTLS} {
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.exited:
				t.Fatalf("%s exited: %s", p.domain, p.out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not listening on %d: %v\n%s", p.domain, port, err, p.out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// kill is kill -9: no shutdown, nothing flushed.
func (p *xmppdProc) kill(t *testing.T) {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	if t.Failed() {
		t.Logf("%s output before kill -9 (tail):\n%s", p.domain, tailLines(p.out.String(), 100))
	}
}

func (p *xmppdProc) stop(t *testing.T) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	if t.Failed() {
		t.Logf("%s output (tail):\n%s", p.domain, tailLines(p.out.String(), 150))
	}
}

// login logs user in over direct TLS with stream management on.
func (p *xmppdProc) login(t *testing.T, user string) *xmpptest.Client {
	t.Helper()
	c := xmpptest.Dial(t, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p.c2sTLS}, true)
	open(c, p.domain)
	if el := c.Auth("SCRAM-SHA-256", user, user+"-pw"); el.Local != "success" {
		t.Fatalf("auth: %s", el)
	}
	open(c, p.domain)
	c.Bind("r")
	c.Send("<enable xmlns='urn:xmpp:sm:3'/>")
	expect(t, c, "<enabled/>", func(el *stream.Element) bool { return el.Local == "enabled" })
	c.Send("<presence/>")
	return c
}

// The issue's kill -9 test: hearth2.test is down, alice's messages to bob
// there are queued and acknowledged (XEP-0198 <a h/>), hearth.test is
// killed with SIGKILL and started again, hearth2.test comes up: every
// acknowledged message arrives, once, in order.
func TestKill9KeepsQueue(t *testing.T) {
	w := newWorld(t)
	bin := buildXmppd(t)
	h1 := w.newProc(t, bin, "hearth.test", "alice")
	h2 := w.newProc(t, bin, "hearth2.test", "bob") // not started: down
	h1.start(t)

	const n = 40
	alice := h1.login(t, "alice")
	for i := range n {
		alice.Send(fmt.Sprintf("<message to='bob@hearth2.test' type='chat' id='k%d'><body>k%d</body></message>", i, i))
	}
	// Wait for the acknowledgement of all n (and the presence): it may
	// come short first while commits are outstanding, then in full.
	alice.Send("<r xmlns='urn:xmpp:sm:3'/>")
	expect(t, alice, fmt.Sprintf("<a h='%d'/>", n+1), func(el *stream.Element) bool {
		h, _ := strconv.Atoi(el.Get("h"))
		return el.Local == "a" && h >= n+1
	})
	h1.kill(t)
	// What was acknowledged is on disk.
	st, err := store.Open(filepath.Join(h1.dir, "xmppd.db"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := st.S2SQueue()
	st.Close()
	if err != nil || len(recs) != n {
		t.Fatalf("%d stored records after kill -9 (%v), want %d", len(recs), err, n)
	}

	h2.start(t)
	bob := h2.login(t, "bob")
	h1.start(t)
	got := map[string]int{}
	next := 0
	for next < n {
		el := expect(t, bob, fmt.Sprintf("message k%d", next), message("alice@hearth.test/r", "bob@hearth2.test"))
		body := el.ChildText(stream.NSClient, "body")
		got[body]++
		if got[body] > 1 {
			t.Fatalf("%s arrived twice", body)
		}
		if want := fmt.Sprintf("k%d", next); body != want {
			t.Fatalf("got %s, want %s (in order, none missing)", body, want)
		}
		next++
	}
	// A message sent after the restart comes after them and nothing else
	// in between: none came twice.
	alice = h1.login(t, "alice")
	alice.Send("<message to='bob@hearth2.test' type='chat' id='after'><body>after</body></message>")
	el := expect(t, bob, "the message sent after the restart", message("alice@hearth.test/r", "bob@hearth2.test"))
	if body := el.ChildText(stream.NSClient, "body"); body != "after" {
		t.Fatalf("got %q before the message sent after the restart (a duplicate)", body)
	}
}
