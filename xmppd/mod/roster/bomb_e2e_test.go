//go:build e2e

package roster_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/client"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
)

// daemon is a real xmppd process for the test, with its own state.
type daemon struct {
	cmd    *exec.Cmd
	tlsAdr string
	log    string
}

func startDaemon(t *testing.T, users ...string) *daemon {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
	dir := t.TempDir()
	bin := filepath.Join(dir, "xmppd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/xmppd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/xmppd: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "state")
	for _, u := range users {
		if out, err := exec.Command(bin, "-state", state, "-domain", "example.test", "useradd", u, u+"-password").CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v\n%s", u, err, out)
		}
	}
	port := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	d := &daemon{tlsAdr: port(), log: filepath.Join(dir, "log")}
	lf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	// -no-shaping only makes filling the roster quick; the costs measured
	// here do not depend on the read rate.
	d.cmd = exec.Command(bin, "-state", state, "-domain", "example.test", "-c2s", port(), "-c2s-tls", d.tlsAdr,
		"-c2s-onion", "none", "-no-shaping")
	d.cmd.Stdout, d.cmd.Stderr = lf, lf
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-done
		}
		lf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(d.log)
			t.Logf("xmppd log:\n%s", b)
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", d.tlsAdr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("xmppd does not listen on %s", d.tlsAdr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

func (d *daemon) login(t *testing.T, user, res string) *client.Conn {
	t.Helper()
	c, err := client.Dial(context.Background(), client.Config{Addr: d.tlsAdr, Domain: "example.test", User: user,
		Password: user + "-password", Resource: res, DirectTLS: true, TLS: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cpu is the process's user+system CPU time (/proc/PID/stat, in USER_HZ
// ticks of 10 ms).
func (d *daemon) cpu(t *testing.T) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// rss is one field of /proc/PID/status (VmRSS, VmHWM) in MiB.
func (d *daemon) rss(t *testing.T, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	t.Fatalf("no %s", field)
	return 0
}

// await reads until the iq with id arrives and returns its raw bytes
// (a maximal roster result has more elements than stream.ParseElement
// takes from a client, so it is not parsed here).
func await(c *client.Conn, id string) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		b, err := c.ReadStanza()
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", id, err)
		}
		head := string(b[:min(len(b), 200)])
		if client.Name(b) == "iq" && (strings.Contains(head, "id='"+id+"'") || strings.Contains(head, `id="`+id+`"`)) {
			return bytes.Clone(b), nil
		}
	}
}

// isResult reports whether an iq's start tag says type result.
func isResult(b []byte) bool {
	head := string(b[:bytes.IndexByte(b, '>')+1])
	return strings.Contains(head, "type='result'") || strings.Contains(head, `type="result"`)
}

// TestMaximalRosterCosts is the attack from issue 9 against a running
// xmppd: one member sends items of 66 KiB (refused past the budget), then
// fills the roster with as many items as the limits allow, then
// sends bare presences and fetches the roster from six connections at
// once. Before the index and the budget that cost ~0.5 s of CPU per
// presence and took RSS to 1.9 GB. The bar: under 5 ms of server CPU per
// presence, server RSS under 64 MB, every session still open.
func TestMaximalRosterCosts(t *testing.T) {
	d := startDaemon(t, "alice")
	a := d.login(t, "alice", "fill")

	// The items of the original attack: a 1 KiB name and 64 groups of
	// 1 KiB, 66 KiB each. The budget stops them after MaxBytes.
	var big strings.Builder
	for g := range 64 {
		fmt.Fprintf(&big, "<group>%03d%s</group>", g, strings.Repeat("g", 1021))
	}
	bigAccepted := 0
	for i := range 20 {
		id := fmt.Sprintf("big%d", i)
		a.Send([]byte(fmt.Sprintf("<iq type='set' id='%s'><query xmlns='jabber:iq:roster'><item jid='big%d@example.test' name='%s'>%s</item></query></iq>",
			id, i, strings.Repeat("n", 1024), big.String())))
		r, err := await(a, id)
		if err != nil {
			t.Fatal(err)
		}
		if isResult(r) {
			bigAccepted++
		}
	}
	if bigAccepted*66<<10 > roster.MaxBytes+66<<10 || bigAccepted == 20 {
		t.Fatalf("%d items of 66 KiB accepted: the roster budget (%d KiB) does not hold", bigAccepted, roster.MaxBytes>>10)
	}
	t.Logf("items of 66 KiB: %d accepted, %d refused", bigAccepted, 20-bigAccepted)
	for i := range bigAccepted {
		id := fmt.Sprintf("rm%d", i)
		a.Send([]byte(fmt.Sprintf("<iq type='set' id='%s'><query xmlns='jabber:iq:roster'><item jid='big%d@example.test' subscription='remove'/></query></iq>", id, i)))
		if r, err := await(a, id); err != nil || !isResult(r) {
			t.Fatalf("remove big%d: %.200s %v", i, r, err)
		}
	}

	// The most items the limits allow: ~500 bytes each up to the budget.
	groups := ""
	for g := range 12 {
		groups += fmt.Sprintf("<group>group-%02d</group>", g)
	}
	name := strings.Repeat("n", 200)
	go func() {
		var b strings.Builder
		for i := range 1000 {
			fmt.Fprintf(&b, "<iq type='set' id='s%d'><query xmlns='jabber:iq:roster'><item jid='c%04d@example.test' name='%s'>%s</item></query></iq>", i, i, name, groups)
			if i%100 == 99 {
				a.Send([]byte(b.String()))
				b.Reset()
			}
		}
	}()
	accepted, refused := 0, 0
	for i := range 1000 {
		r, err := await(a, fmt.Sprintf("s%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if isResult(r) {
			accepted++
		} else {
			refused++
		}
	}
	if accepted < 900 {
		t.Fatalf("only %d of 1000 items of ~500 bytes accepted (%d refused): the roster is not maximal", accepted, refused)
	}
	t.Logf("roster: %d items accepted, %d refused at the limits", accepted, refused)

	// One presence (and a ping to know it was handled), 300 times.
	const n = 300
	c0 := d.cpu(t)
	for i := range n {
		a.Send([]byte(fmt.Sprintf("<presence/><iq type='get' id='p%d'><ping xmlns='urn:xmpp:ping'/></iq>", i)))
		if _, err := await(a, fmt.Sprintf("p%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	per := (d.cpu(t) - c0) / n
	t.Logf("server CPU per presence: %v (over %d presences)", per, n)
	if per > 5*time.Millisecond {
		t.Errorf("one presence costs %v of server CPU, the bar is 5 ms", per)
	}

	before := d.rss(t, "VmHWM")
	var cs []*client.Conn
	for i := range 6 {
		cs = append(cs, d.login(t, "alice", fmt.Sprintf("get%d", i)))
	}
	g0 := d.cpu(t)
	for round := range 5 {
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("g%d-%d", round, i)
				c.Send([]byte("<iq type='get' id='" + id + "'><query xmlns='jabber:iq:roster'/></iq>"))
				r, err := await(c, id)
				if err != nil {
					t.Error(err)
					return
				}
				if n := bytes.Count(r, []byte("<item ")); !isResult(r) || n != accepted {
					t.Errorf("%s: %.200s… with %d items, want a result with %d", id, r, n, accepted)
				}
			}()
		}
		wg.Wait()
	}
	for i, c := range cs {
		id := fmt.Sprintf("alive%d", i)
		c.Send([]byte("<iq type='get' id='" + id + "'><ping xmlns='urn:xmpp:ping'/></iq>"))
		if _, err := await(c, id); err != nil {
			t.Errorf("session %d after the gets: %v", i, err)
		}
	}
	t.Logf("server CPU per roster get: %v", (d.cpu(t)-g0)/time.Duration(5*len(cs)))
	peak := d.rss(t, "VmHWM")
	t.Logf("server RSS peak: %.1f MiB before the gets, %.1f MiB after 5 rounds of 6 concurrent gets", before, peak)
	if peak > 64 {
		t.Errorf("server RSS peaked at %.1f MiB, the bar is 64 MiB", peak)
	}
}
