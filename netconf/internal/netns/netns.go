// Package netns builds small throw-away networks for netconf's end-to-end
// tests: named network namespaces joined by veth pairs, and commands run
// inside them. It drives iproute2 (`ip`), so it needs root.
//
// Tests must reach only loopback and namespaces they made, so every
// namespace here starts with nothing but its own loopback; traffic can only
// flow over the veth pairs the test adds. Names are prefixed per package
// ("hnc-up…" for netconf/upnp) so parallel test binaries never collide, and
// Sweep removes what a crashed earlier run left behind.
//
// Typical use:
//
//	netns.Sweep("hnc-up")
//	lan := netns.New(t, "hnc-up-lan")
//	rtr := netns.New(t, "hnc-up-rtr")
//	netns.Link(t, lan, "l0", "192.168.77.2/24", rtr, "r0", "192.168.77.1/24")
//	lan.MustRun(t, "ip", "route", "add", "default", "via", "192.168.77.1")
//	cmd := lan.Command("upnpc", "-l")
//
// Go code that must itself run inside a namespace (its sockets belong to
// the namespace of the thread that opens them, and the Go runtime moves
// goroutines between threads) is best run as a child process: re-execute
// the test binary through Command with an environment variable that
// TestMain recognises.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/internal/testenv"
)

// runTimeout bounds each `ip` invocation: a hung netlink call must fail the
// test, not hang CI.
const runTimeout = 20 * time.Second

// NS is one named network namespace.
type NS struct {
	Name string
}

// Available says why namespaces cannot be made here (not root, no ip), or
// nil when they can.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netns: needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("netns: iproute2 missing: %w", err)
	}
	return nil
}

// Need skips t when namespaces cannot be made (a developer without root)
// and fails it under CI (CI=true), which runs as root: there a missing
// namespace must not turn a suite into one that cannot fail.
func Need(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		testenv.Skip(t, err)
	}
}

// Create makes the namespace name with its loopback up, removing an old
// one of the same name first.
func Create(name string) (*NS, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if exists(name) {
		if err := (&NS{name}).Delete(); err != nil {
			return nil, err
		}
	}
	if _, err := run("ip", "netns", "add", name); err != nil {
		return nil, err
	}
	n := &NS{Name: name}
	if _, err := run("ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		n.Delete()
		return nil, err
	}
	return n, nil
}

// New is Create for tests: it fails t on error and deletes the namespace
// (and ends what still runs in it) when t ends, also after a failure.
func New(t testing.TB, name string) *NS {
	t.Helper()
	n, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Errorf("netns cleanup: %v", err)
		}
	})
	return n
}

// Delete ends every process still inside the namespace and removes it; its
// veth ends go with it. Deleting a missing namespace is not an error.
func (n *NS) Delete() error {
	if !exists(n.Name) {
		return nil
	}
	n.killAll()
	if _, err := run("ip", "netns", "del", n.Name); err != nil && exists(n.Name) {
		return err
	}
	return nil
}

// killAll ends the processes inside n. Only namespaces made by these tests
// (checkName's prefix rule) ever get here, so only the tests' own daemons
// are hit.
func (n *NS) killAll() {
	pids := n.pids()
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(pids) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		pids = n.pids()
	}
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
}

func (n *NS) pids() []int {
	out, err := run("ip", "netns", "pids", n.Name)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if p, err := strconv.Atoi(f); err == nil && p != os.Getpid() {
			pids = append(pids, p)
		}
	}
	return pids
}

// Sweep deletes every namespace whose name starts with prefix: what an
// earlier run that crashed before its cleanup left behind.
func Sweep(prefix string) error {
	if err := checkName(prefix); err != nil {
		return err
	}
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("netns: list: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			errs = append(errs, (&NS{e.Name()}).Delete())
		}
	}
	return errors.Join(errs...)
}

// Command returns a command that runs name inside n (through `ip netns
// exec`). Killing it ends the command itself: ip execs into it.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// CommandContext is Command bound to ctx.
func (n *NS) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs name inside n and returns its combined output; it is bounded
// by runTimeout.
func (n *NS) Run(name string, args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// MustRun is Run that fails t on error.
func (n *NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Veth joins a and b by a veth pair: interface aIf in a with address aAddr
// (CIDR, e.g. "192.168.77.2/24"; empty for none) and bIf in b. Both ends
// are created directly inside their namespaces, so nothing appears in the
// host's namespace and interface names cannot collide with other tests'.
func Veth(a *NS, aIf, aAddr string, b *NS, bIf, bAddr string) error {
	for _, nm := range []string{aIf, bIf} {
		if nm == "" || len(nm) > 15 {
			return fmt.Errorf("netns: interface name %q must be 1–15 bytes", nm)
		}
	}
	if _, err := run("ip", "link", "add", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name); err != nil {
		return err
	}
	for _, end := range []struct {
		ns        *NS
		ifc, addr string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		if err := end.ns.SetAddr(end.ifc, end.addr); err != nil {
			return err
		}
		if _, err := run("ip", "-n", end.ns.Name, "link", "set", end.ifc, "up"); err != nil {
			return err
		}
	}
	return nil
}

// Link is Veth for tests.
func Link(t testing.TB, a *NS, aIf, aAddr string, b *NS, bIf, bAddr string) {
	t.Helper()
	if err := Veth(a, aIf, aAddr, b, bIf, bAddr); err != nil {
		t.Fatal(err)
	}
}

// SetAddr replaces the addresses on ifc with addr (CIDR; empty: none).
func (n *NS) SetAddr(ifc, addr string) error {
	if _, err := run("ip", "-n", n.Name, "addr", "flush", "dev", ifc); err != nil {
		return err
	}
	if addr == "" {
		return nil
	}
	if _, err := netip.ParsePrefix(addr); err != nil {
		return fmt.Errorf("netns: address %q: %w", addr, err)
	}
	_, err := run("ip", "-n", n.Name, "addr", "add", addr, "dev", ifc)
	return err
}

// DefaultRoute sends n's traffic without a more specific route to via.
func (n *NS) DefaultRoute(via string) error {
	_, err := run("ip", "-n", n.Name, "route", "replace", "default", "via", via)
	return err
}

// Forwarding turns IPv4 forwarding on in n (a router).
func (n *NS) Forwarding() error {
	// /proc/sys/net belongs to the namespace of the process that opens it;
	// sh rather than sysctl, which minimal images lack (procps).
	_, err := n.Run("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	return err
}

func exists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// checkName keeps names to what `ip netns` and the sweep handle safely,
// and requires the "hnc-" prefix every netconf test namespace carries, so
// Delete and Sweep can never touch a namespace these tests did not make.
func checkName(name string) error {
	if !strings.HasPrefix(name, "hnc-") || len(name) > 64 || strings.ContainsAny(name, "/ \t\n") {
		return fmt.Errorf("netns: bad namespace name %q (want hnc-…, at most 64 bytes)", name)
	}
	return nil
}

func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
