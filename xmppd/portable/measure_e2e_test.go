//go:build e2e

package portable

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/store"
)

// TestCLI100k measures `xmppd export` and `xmppd import` of an account
// with 100,000 archived messages (time and peak RSS from /usr/bin/time),
// and checks the imported account exports the same document.
//
//	go test -tags e2e -run TestCLI100k -v -count=1 ./xmppd/portable/
func TestCLI100k(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/time"); err != nil {
		t.Skip("no /usr/bin/time")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "xmppd")
	if b := os.Getenv("XMPPD_BIN"); b != "" {
		bin = b // a binary built already (the tree may be mid-change)
	} else if out, err := exec.Command("go", "build", "-o", bin, "github.com/hearthchat/hearth/cmd/xmppd").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	os.MkdirAll(a, 0o700)
	st, err := store.Open(filepath.Join(a, "xmppd.db"))
	if err != nil {
		t.Fatal(err)
	}
	fill(t, st, "juliet", 100_000)
	st.Close()
	doc := filepath.Join(tmp, "juliet.xml")
	run := func(state string, stdout *os.File, args ...string) string {
		t.Helper()
		cmd := exec.Command("/usr/bin/time", append([]string{"-f", "TIME %e s, peak RSS %M KiB", bin, "-state", state, "-domain", domain}, args...)...)
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = stdout, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		i := strings.LastIndex(errb.String(), "TIME ")
		return strings.TrimSpace(errb.String()[i:])
	}
	f, _ := os.Create(doc)
	t.Logf("export: %s", run(a, f, "export", "juliet"))
	f.Close()
	fi, _ := os.Stat(doc)
	t.Logf("document: %d bytes", fi.Size())
	t.Logf("import: %s", run(b, os.Stdout, "import", doc))
	f2, _ := os.Create(doc + ".2")
	run(b, f2, "export", "juliet")
	f2.Close()
	x, _ := os.ReadFile(doc)
	y, _ := os.ReadFile(doc + ".2")
	if !bytes.Equal(x, y) {
		t.Fatal("the imported account exports another document")
	}

	// While a server runs on b: export goes through its admin socket (the
	// same document), import is refused with words.
	port := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	tlsAddr := port()
	srv := exec.Command(bin, "-state", b, "-domain", domain, "-c2s", port(), "-c2s-tls", tlsAddr, "-c2s-onion", "none")
	var srvLog bytes.Buffer
	srv.Stdout, srv.Stderr = &srvLog, &srvLog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		srv.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			srv.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("xmppd log:\n%s", srvLog.String())
		}
	}
	defer stop()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.Dial("unix", filepath.Join(b, "admin.sock")); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no admin socket within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	f3, _ := os.Create(doc + ".3")
	t.Logf("export through the running server's admin socket: %s", run(b, f3, "export", "juliet"))
	f3.Close()
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "VmHWM") || strings.HasPrefix(l, "VmRSS") {
				t.Logf("server %s", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	out, err := exec.Command(bin, "-state", b, "-domain", domain, "import", doc).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "stop it first") {
		t.Fatalf("import while the server runs: %v %s", err, out)
	}
	// The server changed the account at its start (the club room's
	// bookmark): the socket's document is compared with the stopped
	// server's.
	stop()
	f4, _ := os.Create(doc + ".4")
	run(b, f4, "export", "juliet")
	f4.Close()
	z, _ := os.ReadFile(doc + ".3")
	w, _ := os.ReadFile(doc + ".4")
	if !bytes.Equal(w, z) {
		t.Fatalf("the admin socket's export (%d bytes) differs from the stopped server's (%d bytes)", len(z), len(w))
	}
}
