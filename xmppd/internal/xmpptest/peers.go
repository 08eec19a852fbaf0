package xmpptest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NodeModules is where `make web-deps` installed setup-ui/e2e's pinned npm
// packages (@xmpp/client 0.14.0 among them), under the repository's
// .cache/web-e2e; HEARTH_WEB_E2E_NODE points elsewhere. Without them the
// test is skipped, or fails under CI.
func NodeModules(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HEARTH_WEB_E2E_NODE")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), ".cache", "web-e2e")
	}
	nm := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(nm, "@xmpp", "client")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("@xmpp/client missing in %s (make web-deps)", nm)
		}
		t.Skipf("@xmpp/client missing in %s: run make web-deps", nm)
	}
	return nm
}

// repoRoot is the nearest directory above the test's own holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = up
	}
}

// Lines starts cmd and returns its standard output line by line (each also
// logged under name); standard error goes to the test's.
func Lines(t testing.TB, name string, cmd *exec.Cmd) <-chan string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Logf("%s: %s", name, sc.Text())
			ch <- sc.Text()
		}
		close(ch)
	}()
	return ch
}

// Expect returns the first line from ch starting with prefix, failing the
// test if the peer ends or within passes first.
func Expect(t testing.TB, ch <-chan string, prefix string, within time.Duration) string {
	t.Helper()
	limit := time.After(within)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("peer ended before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-limit:
			t.Fatalf("no %q within %v", prefix, within)
		}
	}
}
