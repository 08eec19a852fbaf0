// Package testenv decides what a test does when something it needs from
// the machine is missing: a real peer (prosody, knotd, pebble, avahi, …)
// or root (network namespaces, chroot).
//
// On a developer's machine such a test skips, so `go test ./...` stays
// usable without every Debian package. In CI (.ci/run exports CI=true)
// it fails instead: a suite that silently skips there is a suite that
// can never fail, and a missing package in `make test-deps` would go
// unnoticed for as long as nobody read the skip lines.
//
// Skips that are not about the machine (a helper-process guard, a case
// that does not apply to one backend) keep calling t.Skip directly.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// InCI reports whether the tests run in CI: CI set to anything but an
// explicit false ("", "0", "false").
func InCI() bool {
	v := os.Getenv("CI")
	if v == "" {
		return false
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return true
}

// Skip skips t with reason, or under CI fails it with reason.
func Skip(t testing.TB, reason ...any) {
	t.Helper()
	msg := fmt.Sprint(reason...)
	if InCI() {
		t.Fatalf("%s (CI is set: a test that needs this fails rather than skips)", msg)
	}
	t.Skip(msg)
}

// Skipf is Skip with a format.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	Skip(t, fmt.Sprintf(format, args...))
}

// sbinDirs are searched after PATH: daemons such as knotd and
// miniupnpd live there, and a non-root PATH often lacks them.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// LookCommand finds name in PATH or, for a bare name, in the sbin
// directories; it returns "" when there is none.
func LookCommand(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if filepath.Base(name) != name {
		return ""
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// NeedCommand returns the path of the program name, or skips t (fails it
// under CI) when it is not installed. install says where it comes from,
// e.g. "apt package prosody; make test-deps installs it".
func NeedCommand(t testing.TB, name, install string) string {
	t.Helper()
	p := LookCommand(name)
	if p == "" {
		Skipf(t, "%s is not installed (%s)", name, install)
	}
	return p
}

// geteuid is replaced by this package's tests to play a user.
var geteuid = os.Geteuid

// NeedRoot skips t (fails it under CI, which runs as root) unless the
// test runs as root; why says what root is for.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if geteuid() != 0 {
		Skipf(t, "needs root: %s", why)
	}
}
