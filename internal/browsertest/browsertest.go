// Package browsertest runs the e2e suites' browser scripts (Node with
// npm playwright-core and @axe-core/playwright driving Debian's chromium)
// and reads the one JSON line each prints. The scripts share
// setup-ui/e2e/lib.mjs; a script is copied with it into a directory of its
// own under the npm directory, so node finds node_modules above it and
// two packages' tests running at once never write the same file.
package browsertest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Root is the repository's top directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// NodeDir is where `make web-deps` installed the pinned npm packages
// (.cache/web-e2e, or HEARTH_WEB_E2E_NODE). Without them, or without
// Debian's chromium, the test is skipped, or fails under CI.
func NodeDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("HEARTH_WEB_E2E_NODE")
	if dir == "" {
		dir = filepath.Join(Root(), ".cache", "web-e2e")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("npm packages missing in %s (make web-deps)", dir)
		}
		t.Skipf("npm packages missing in %s: run make web-deps", dir)
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("Debian chromium missing (make web-deps)")
	}
	return dir
}

// Screenshots is out/screenshots (under sub, if given), made if missing.
func Screenshots(t testing.TB, sub ...string) string {
	t.Helper()
	dir := filepath.Join(append([]string{Root(), "out", "screenshots"}, sub...)...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Command returns node running script (a path under the repository, e.g.
// "setup-ui/e2e/admin.mjs") with env added to the test's environment and
// standard error to the test's. The script and lib.mjs are copied into a
// fresh directory under nodeDir, removed when the test ends.
func Command(t testing.TB, ctx context.Context, nodeDir, script string, env ...string) *exec.Cmd {
	t.Helper()
	run, err := os.MkdirTemp(nodeDir, "run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	for _, src := range []string{script, "setup-ui/e2e/lib.mjs"} {
		b, err := os.ReadFile(filepath.Join(Root(), src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(run, filepath.Base(src)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(ctx, "node", filepath.Join(run, filepath.Base(script)))
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// Page is one page a script checked: its weight as the browser decoded it.
type Page struct {
	Name            string
	Bytes, Requests int
}

// Result is what every script prints: the pages, requests that left the
// box, axe-core's violations (and pages wider than the phone), the
// script's own checks, and the error that stopped it.
type Result struct {
	Pages      []Page
	ThirdParty []string
	Violations []map[string]any
	Checks     map[string]any
	Error      string
}

// Decode reads the last line of out (a script's standard output; lines
// before it are its own progress) into v, or fails the test.
func Decode(t testing.TB, out []byte, v any) {
	t.Helper()
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		s = s[i+1:]
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("node output: %v\n%s", err, out)
	}
}

// Parse decodes out into a Result and fails the test if the script
// stopped with an error.
func Parse(t testing.TB, out []byte) Result {
	t.Helper()
	var res Result
	Decode(t, out, &res)
	if res.Error != "" {
		t.Fatalf("browser: %s", res.Error)
	}
	return res
}

// Judge logs each page's weight as a figure and fails the test for every
// request that left the box and every accessibility violation.
func (res Result) Judge(t testing.TB) {
	t.Helper()
	for _, p := range res.Pages {
		t.Logf("figure: page %s %d bytes in %d responses", p.Name, p.Bytes, p.Requests)
	}
	if len(res.ThirdParty) > 0 {
		t.Errorf("requests leaving the box: %v", res.ThirdParty)
	}
	for _, v := range res.Violations {
		t.Errorf("accessibility: %v", v)
	}
}

// Run runs script to its end (see Command), parses its line and judges it.
func Run(t testing.TB, ctx context.Context, nodeDir, script string, env ...string) Result {
	t.Helper()
	out, err := Command(t, ctx, nodeDir, script, env...).Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	res := Parse(t, out)
	res.Judge(t)
	return res
}

// RunPaused runs a script that stops once on its way: it prints one line
// and waits for one on its standard input while the test looks at the
// running server. paused gets the printed line (trimmed; if the script
// failed first, its JSON line); then the script goes on to its end, and
// its line is parsed and judged as Run does.
func RunPaused(t testing.TB, ctx context.Context, nodeDir, script string, paused func(line string), env ...string) Result {
	t.Helper()
	cmd := Command(t, ctx, nodeDir, script, env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	first, err := out.ReadString('\n')
	if err != nil {
		cmd.Wait()
		t.Fatalf("node: %v %q", err, first)
	}
	paused(strings.TrimSpace(first))
	io.WriteString(stdin, "go\n")
	rest, _ := io.ReadAll(out)
	cmd.Wait()
	res := Parse(t, []byte(first+string(rest)))
	res.Judge(t)
	return res
}
