//go:build e2e

package mdns

// The test network: one "switch" namespace with a bridge, a "peer"
// namespace where Debian's avahi-daemon (with libnss-mdns for getent)
// plays the phone or laptop at home, and one namespace per box running
// our responder. Nothing here sends a packet outside these namespaces.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hearthchat/hearth/internal/testenv"
	"github.com/hearthchat/hearth/netconf/status"
)

// Namespace names carry our PID ("hnc-md1234-peer"), so two runs of this
// package at once (a developer and `make test`) never share a namespace,
// and a leftover from a crashed run is told by its PID being gone.
var nsPrefix = fmt.Sprintf("%s%d", nsFamily, os.Getpid())

const nsFamily = "hnc-md"

var (
	nsSwitch = nsPrefix + "-sw"
	nsPeer   = nsPrefix + "-peer"
	nsWAN    = nsPrefix + "-wan"
)

const (
	peerV4 = "10.77.0.1"
	peerV6 = "fd77::1"
)

func nsBox(i int) string { return fmt.Sprintf("%s-b%d", nsPrefix, i) }
func boxV4(i int) string { return fmt.Sprintf("10.77.0.%d", 10+i) }
func boxV6(i int) string { return fmt.Sprintf("fd77::%d", 10+i) }
func nsFor(i int) string {
	if i == 0 {
		return nsPeer
	}
	return nsBox(i)
}

func needTools(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t, "the test network is made of network namespaces")
	for _, c := range []string{"ip", "unshare", "nsenter", "getent", "dbus-daemon", "avahi-daemon", "avahi-browse", "avahi-resolve"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is not installed (make test-deps installs avahi-daemon, avahi-utils, libnss-mdns): %v", c, err)
		}
	}
	if _, err := os.Stat("/etc/nsswitch.conf"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile("/etc/nsswitch.conf"); !bytes.Contains(b, []byte("mdns")) {
		t.Fatal("/etc/nsswitch.conf has no mdns source: is libnss-mdns installed?")
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// removeNamespaces deletes this run's namespaces, with whatever still
// runs in them, and those left by earlier runs that are gone.
func removeNamespaces() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsFamily) {
			continue
		}
		name := f[0]
		pids, _ := exec.Command("ip", "netns", "pids", name).Output()
		if !strings.HasPrefix(name, nsPrefix+"-") {
			var pid int
			if _, err := fmt.Sscanf(strings.TrimPrefix(name, nsFamily), "%d-", &pid); err == nil {
				if pid > 0 && syscall.Kill(pid, 0) == nil {
					continue // another run of this package, still going
				}
			} else if len(strings.Fields(string(pids))) > 0 {
				continue // not in our naming scheme and in use: not ours to end
			}
		}
		for _, p := range strings.Fields(string(pids)) {
			var pid int
			if _, err := fmt.Sscan(p, &pid); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		exec.Command("ip", "netns", "del", name).Run()
	}
}

// newLab builds the switch, the peer and n boxes. Box i has boxV4(i)
// and boxV6(i) on eth0; the peer has peerV4 and peerV6.
func newLab(t *testing.T, n int) {
	t.Helper()
	removeNamespaces()
	t.Cleanup(removeNamespaces)
	run(t, "ip", "netns", "add", nsSwitch)
	// Snooping could hold back IPv6 multicast until an MLD querier shows
	// up; a home switch floods it, and so does this one.
	run(t, "ip", "-n", nsSwitch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	run(t, "ip", "-n", nsSwitch, "link", "set", "br0", "up")
	for i := 0; i <= n; i++ {
		ns := nsFor(i)
		v4, v6 := peerV4, peerV6
		if i > 0 {
			v4, v6 = boxV4(i), boxV6(i)
		}
		run(t, "ip", "netns", "add", ns)
		// Addresses usable at once: no duplicate-address detection wait.
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		port := fmt.Sprintf("p%d", i)
		run(t, "ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns", nsSwitch)
		run(t, "ip", "-n", nsSwitch, "link", "set", port, "master", "br0", "up")
		run(t, "ip", "-n", ns, "addr", "add", v4+"/24", "dev", "eth0")
		run(t, "ip", "-n", ns, "addr", "add", v6+"/64", "dev", "eth0", "nodad")
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	}
}

// addWAN gives box 1 a second link, eth1 (10.88.0.11), to a namespace
// that stands for the internet side (10.88.0.1).
func addWAN(t *testing.T) {
	t.Helper()
	run(t, "ip", "netns", "add", nsWAN)
	run(t, "ip", "-n", nsWAN, "link", "set", "lo", "up")
	run(t, "ip", "link", "add", "eth1", "netns", nsBox(1), "type", "veth", "peer", "name", "eth0", "netns", nsWAN)
	run(t, "ip", "-n", nsBox(1), "addr", "add", "10.88.0.11/24", "dev", "eth1")
	run(t, "ip", "-n", nsWAN, "addr", "add", "10.88.0.1/24", "dev", "eth0")
	run(t, "ip", "-n", nsBox(1), "link", "set", "eth1", "up")
	run(t, "ip", "-n", nsWAN, "link", "set", "eth0", "up")
}

// lineLog collects a process's output lines for the test log and for
// waiting on.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *lineLog) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// process is a child we started in its own process group, so that it
// and whatever it started (avahi's dbus-daemon) stop together.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (p *process) stop(sig syscall.Signal, wait time.Duration) bool {
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
		return true
	case <-time.After(wait):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return false
	}
}

func start(t *testing.T, cmd *exec.Cmd, onLine func(string)) *process {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	w.Close()
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			onLine(sc.Text())
		}
		r.Close()
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(syscall.SIGTERM, 5*time.Second) })
	return p
}

// avahi is avahi-daemon in the peer namespace, with a private /run (its
// socket for nss-mdns, and a private D-Bus system bus that avahi-browse
// and avahi-resolve talk to).
type avahi struct {
	*process
	log lineLog
	t   *testing.T
}

const avahiConf = `[server]
host-name=peer
domain-name=local
use-ipv4=yes
use-ipv6=yes
allow-interfaces=eth0
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[wide-area]
enable-wide-area=no
[publish]
publish-hinfo=no
publish-workstation=no
publish-aaaa-on-ipv4=no
publish-a-on-ipv6=no
`

const dbusConf = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`

// The script runs inside `ip netns exec peer unshare --mount`: a tmpfs
// over /run hides the host's /run (and any system avahi or dbus) from
// everything in this mount namespace only.
const avahiScript = `set -e
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus /run/avahi-daemon
dbus-daemon --config-file="$1/dbus.conf" --nofork --nopidfile &
for i in $(seq 100); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.05; done
exec avahi-daemon -f "$1/avahi.conf" --no-drop-root --no-chroot --no-rlimits --no-proc-title
`

func startAvahi(t *testing.T) *avahi {
	t.Helper()
	dir := t.TempDir()
	for name, s := range map[string]string{"avahi.conf": avahiConf, "dbus.conf": dbusConf, "run.sh": avahiScript} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := &avahi{t: t}
	cmd := exec.Command("ip", "netns", "exec", nsPeer, "unshare", "--mount", "sh", filepath.Join(dir, "run.sh"), dir)
	a.process = start(t, cmd, func(s string) { a.log.add(s) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("avahi-daemon log:\n%s", a.log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for !a.log.has("Server startup complete") {
		select {
		case <-a.done:
			t.Fatalf("avahi-daemon exited:\n%s", a.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("avahi-daemon did not start in 15s:\n%s", a.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return a
}

// exec runs a client command in avahi's network and mount namespaces, so
// getent's nss-mdns finds this avahi's socket and avahi-browse its bus.
func (a *avahi) exec(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{"-t", fmt.Sprint(a.cmd.Process.Pid), "-m", "-n", name}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", full...).CombinedOutput()
	return string(out), err
}

// box is our responder, running as a helper process in a box namespace.
type box struct {
	*process
	i   int
	t   *testing.T
	log lineLog

	mu     sync.Mutex
	checks []helperLine
	change chan struct{}
}

// helperLine is what the helper prints on each status change.
type helperLine struct {
	Check status.Check `json:"check"`
	Name  string       `json:"name"`
}

func startBox(t *testing.T, i int, host string, port int, poll time.Duration, ifaces ...string) *box {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := &box{i: i, t: t, change: make(chan struct{}, 1)}
	cmd := exec.Command("ip", "netns", "exec", nsBox(i), exe, "-test.run", "^TestHelperResponder$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "HNC_MDNS_HOST="+host,
		fmt.Sprintf("HNC_MDNS_PORT=%d", port), "HNC_MDNS_POLL="+poll.String(),
		"HNC_MDNS_IFACES="+strings.Join(ifaces, ","))
	b.process = start(t, cmd, func(s string) {
		var l helperLine
		if json.Unmarshal([]byte(s), &l) == nil && l.Check.ID != "" {
			b.mu.Lock()
			b.checks = append(b.checks, l)
			b.mu.Unlock()
			select {
			case b.change <- struct{}{}:
			default:
			}
		}
		b.log.add(s)
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("box %d log:\n%s", i, b.log.String())
		}
	})
	return b
}

// wait returns the first status line (in order) at or after the start
// that satisfies ok.
func (b *box) wait(timeout time.Duration, what string, ok func(helperLine) bool) helperLine {
	b.t.Helper()
	deadline := time.After(timeout)
	seen := 0
	for {
		b.mu.Lock()
		lines := b.checks[seen:]
		seen = len(b.checks)
		b.mu.Unlock()
		for _, l := range lines {
			if ok(l) {
				return l
			}
		}
		select {
		case <-b.change:
		case <-b.done:
			b.t.Fatalf("box %d exited (%v) while waiting for %s", b.i, b.cmd.ProcessState, what)
		case <-deadline:
			b.t.Fatalf("box %d: no %s within %v", b.i, what, timeout)
		}
	}
}

// waitLog waits until the box's output (its debug lines included) has a
// line containing sub.
func (b *box) waitLog(timeout time.Duration, sub string) {
	b.t.Helper()
	for deadline := time.Now().Add(timeout); !b.log.has(sub); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.t.Fatalf("box %d: no %q in its output within %v", b.i, sub, timeout)
		}
	}
}

func (b *box) waitLevel(l status.Level) helperLine {
	b.t.Helper()
	return b.wait(15*time.Second, "status "+string(l), func(h helperLine) bool { return h.Check.Level == l })
}

// shutdown stops the responder as netconf would (its context ends) and
// checks that it said goodbye and exited cleanly.
func (b *box) shutdown() {
	b.t.Helper()
	if !b.stop(syscall.SIGTERM, 10*time.Second) {
		b.t.Fatalf("box %d did not stop within 10s of SIGTERM", b.i)
	}
	b.mu.Lock()
	last := b.checks[len(b.checks)-1]
	b.mu.Unlock()
	if last.Check.Level != status.Off || last.Name != "" {
		b.t.Errorf("box %d: last status %+v, want off with no name", b.i, last)
	}
	if st := b.cmd.ProcessState; st == nil || !st.Success() {
		b.t.Errorf("box %d: exit %v\n%s", b.i, st, b.log.String())
	}
}

// query runs TestHelperQuery in the peer namespace.
func query(t *testing.T, qname, qtype, to string) (*dns.Msg, queryResult) {
	t.Helper()
	m, res := queryFrom(t, nsPeer, qname, qtype, to)
	if res.Error != "" {
		t.Fatalf("query %s %s to %s: %s", qname, qtype, to, res.Error)
	}
	return m, res
}

// queryFrom runs TestHelperQuery in namespace ns; the reply is nil when
// there was none (res.Error says why).
func queryFrom(t *testing.T, ns, qname, qtype, to string) (*dns.Msg, queryResult) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe, "-test.run", "^TestHelperQuery$")
	cmd.Env = append(os.Environ(), helperEnv+"=query", "HNC_MDNS_QNAME="+qname, "HNC_MDNS_QTYPE="+qtype,
		"HNC_MDNS_TO="+to, "HNC_MDNS_IFACE=eth0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("query helper: %v\n%s", err, out)
	}
	var res queryResult
	line, _, _ := bytes.Cut(out, []byte("\n"))
	if err := json.Unmarshal(line, &res); err != nil {
		t.Fatalf("query helper output %q: %v", out, err)
	}
	if res.Error != "" {
		return nil, res
	}
	m := new(dns.Msg)
	if err := m.Unpack(res.Reply); err != nil {
		t.Fatalf("reply to %s %s: %v", qname, qtype, err)
	}
	return m, res
}
