//go:build e2e

package onion

// These tests run Debian's tor (apt: tor) with networking disabled: tor
// never contacts the Tor network or any other address, and opens no
// listener but its unix control socket.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/internal/testenv"
	"github.com/hearthchat/hearth/netconf/status"
)

func needTor(t *testing.T) {
	t.Helper()
	if _, err := resolveCommand(nil); err != nil {
		t.Fatalf("tor is not installed (make test-deps installs it): %v", err)
	}
}

// torLog sends tor's output to the test log, so a failure shows tor's words.
type torLog struct{ t *testing.T }

func (l torLog) Write(p []byte) (int, error) {
	l.t.Logf("tor: %s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func offlineService(t *testing.T, dir string, b *status.Board, torExe []string) *Service {
	t.Helper()
	s, err := New(Options{TorExe: torExe, DataDir: dir, Ports: testPorts, Reporter: b,
		DisableNetwork: true, StartTimeout: 45 * time.Second, Log: torLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// created is the honest status of a service that exists but, with the
// network off, is not published.
func created(c status.Check) bool {
	return c.Level == status.Pending && c.Detail["published"] == "no" && strings.Contains(c.Message, "not published")
}

func torPID(s *Service) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tor == nil {
		return 0
	}
	return s.tor.pid()
}

// alive reports whether pid is a running (not exited, not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Format: pid (comm) state …; comm may hold spaces, so cut at the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

func waitGone(t *testing.T, pid int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		// Reap it if it was handed to us (see TestTorDiesWithOwner).
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if !alive(pid) {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("tor (pid %d) still running %v after its owner went away", pid, timeout)
	return 0
}

func TestOnionServiceOfflineAndRestart(t *testing.T) {
	needTor(t)
	dir := filepath.Join(t.TempDir(), "tor")
	var b status.Board

	s := offlineService(t, dir, &b, nil)
	stop := runService(t, s)
	c := waitCheck(t, &b, 60*time.Second, "created, not published", created)
	addr := s.Address()
	if !ValidAddress(addr) || c.Detail["address"] != addr {
		t.Fatalf("address %q, detail %v", addr, c.Detail)
	}
	if !strings.HasPrefix(c.Detail["tor"], "0.") {
		t.Errorf("tor version missing in detail: %v", c.Detail)
	}
	if c.Action != "" {
		t.Errorf("pending check has an action: %q", c.Action)
	}

	// tor itself holds the service under our key.
	s.mu.Lock()
	ctrl := s.tor.ctrl
	s.mu.Unlock()
	info, err := ctrl.GetInfo("onions/current")
	if err != nil || len(info) != 1 || strings.TrimSpace(info[0].Val)+".onion" != addr {
		t.Fatalf("tor's onions/current = %+v, %v; want %s", info, err, addr)
	}

	// The key on disk is what the address comes from, private to us.
	onDisk, err := LoadAddress(dir)
	if err != nil || onDisk != addr {
		t.Fatalf("LoadAddress = %q, %v", onDisk, err)
	}
	for _, p := range []string{dir, keyDir(dir), filepath.Join(dir, "data")} {
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v; want 0700", p, st.Mode().Perm(), err)
		}
	}
	for _, f := range []string{secretKeyFile, publicKeyFile, hostnameFile} {
		if st, err := os.Stat(filepath.Join(keyDir(dir), f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, st.Mode().Perm(), err)
		}
	}

	pid := torPID(s)
	if pid == 0 || !alive(pid) {
		t.Fatalf("tor pid %d not running", pid)
	}
	stop()
	if alive(pid) {
		t.Fatalf("tor (pid %d) still running after Run returned", pid)
	}
	if c, _ := b.Report().Get(CheckID); c.Level != status.Off {
		t.Errorf("after stop: %s, want off", c.Level)
	}

	// Same state dir, new process: same address.
	var b2 status.Board
	s2 := offlineService(t, dir, &b2, nil)
	stop2 := runService(t, s2)
	c2 := waitCheck(t, &b2, 60*time.Second, "created, not published", created)
	if s2.Address() != addr || c2.Detail["address"] != addr {
		t.Fatalf("address after restart = %q (detail %q), want %q", s2.Address(), c2.Detail["address"], addr)
	}
	stop2()
}

// tor accepts our key files as its own HiddenServiceDir and derives the
// same address from them: the format is tor's, not just ours.
func TestKeyFilesReadByTor(t *testing.T) {
	needTor(t)
	argv, _ := resolveCommand(nil)
	base := t.TempDir()
	hs := filepath.Join(base, "hs")
	k, _, err := loadOrCreateKey(hs)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(hs, hostnameFile)) // tor must write its own
	torrc := filepath.Join(base, "torrc")
	os.WriteFile(torrc, nil, 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:],
		"-f", torrc, "--defaults-torrc", torrc,
		"--DataDirectory", filepath.Join(base, "data"),
		"--DisableNetwork", "1", "--SocksPort", "0", "--ControlPort", "0",
		"--HiddenServiceDir", hs, "--HiddenServicePort", "80 127.0.0.1:8080")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for {
		h, err := os.ReadFile(filepath.Join(hs, hostnameFile))
		if err == nil && len(h) > 0 {
			if got := strings.TrimSpace(string(h)); got != k.Address() {
				t.Fatalf("tor derived %s from our key, we derived %s", got, k.Address())
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("tor wrote no hostname file; output:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TAKEOWNERSHIP: when our process is killed (no chance to clean up), tor
// exits by itself. A child copy of this test binary runs the service; we
// SIGKILL it and watch its tor.
func TestTorDiesWithOwner(t *testing.T) {
	needTor(t)
	// Orphans are handed to us instead of init, so we can reap the exited
	// tor (init in a container may not) and tell "exited" from "zombie".
	syscall.RawSyscall(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0)

	dir := filepath.Join(t.TempDir(), "tor")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperOnionOwner$", "-test.v")
	child.Env = append(os.Environ(), "HEARTH_ONION_CHILD_DIR="+dir)
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()

	pid := 0
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "TORPID "); ok {
			pid, _ = strconv.Atoi(v)
			break
		}
		t.Logf("child: %s", line)
	}
	if pid == 0 {
		t.Fatalf("child never reported its tor pid (%v)", sc.Err())
	}
	go io.Copy(io.Discard, stdout)
	// Should tor outlive its owner (the bug this test is for), do not leave
	// it running.
	t.Cleanup(func() {
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil)
		}
	})
	if !alive(pid) {
		t.Fatalf("tor pid %d not running", pid)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	// Under 15s: tor's PID polling (reset after TAKEOWNERSHIP) would be slower.
	took := waitGone(t, pid, 10*time.Second)
	t.Logf("tor exited %v after its owner was killed", took.Round(time.Millisecond))
}

// TestHelperOnionOwner is the child of TestTorDiesWithOwner; it does
// nothing when run normally.
func TestHelperOnionOwner(t *testing.T) {
	dir := os.Getenv("HEARTH_ONION_CHILD_DIR")
	if dir == "" {
		t.Skip("helper process for TestTorDiesWithOwner")
	}
	var b status.Board
	s := offlineService(t, dir, &b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go s.Run(ctx)
	waitCheck(t, &b, 50*time.Second, "created, not published", created)
	fmt.Printf("TORPID %d\n", torPID(s))
	<-ctx.Done() // the parent kills us long before this
}

// The image's way of running tor: Debian's tor with its libraries and
// loader copied into one folder (image/tor/collect.sh --host), started
// through the loader as on gokrazy.
func TestBundledTorThroughLoader(t *testing.T) {
	needTor(t)
	script, err := filepath.Abs("../../image/tor/collect.sh")
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	out, err := exec.Command("bash", script, "--host", bundle).CombinedOutput()
	if err != nil {
		t.Fatalf("collect.sh --host: %v\n%s", err, out)
	}
	argv, ok := BundleCommand(bundle)
	if !ok {
		t.Fatalf("collect.sh made no bundle in %s:\n%s", bundle, out)
	}
	// The loader finds every library in the bundle, none from this
	// machine (on gokrazy there are none).
	list := exec.Command(argv[0], argv[1], argv[2], "--list", argv[3])
	list.Env = []string{}
	lout, err := list.CombinedOutput()
	if err != nil {
		t.Fatalf("loader --list: %v\n%s", err, lout)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(lout)), "\n") {
		if _, path, ok := strings.Cut(line, "=> "); ok && !strings.HasPrefix(path, bundle+"/") {
			t.Errorf("library from outside the bundle: %s", strings.TrimSpace(line))
		}
	}
	// And it runs where there is no libc but the bundle's: in a chroot
	// holding only the bundle, at the image's path. A subtest, so that
	// without root it shows as skipped (and fails under CI) instead of
	// being left out in silence.
	t.Run("chroot", func(t *testing.T) {
		testenv.NeedRoot(t, "chroot into the bundle")
		root := t.TempDir()
		if out, err := exec.Command("cp", "-a", bundle, filepath.Join(root, "tor")).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		inner := []string{"/tor/" + filepath.Base(argv[0]), "--library-path", "/tor/lib", "/tor/tor"}
		ver := exec.Command("chroot", append([]string{root}, append(inner, "--version")...)...)
		ver.Env = []string{}
		vout, err := ver.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(vout), "Tor version") {
			t.Fatalf("bundled tor --version in a chroot: %v\n%s", err, vout)
		}
	})

	var b status.Board
	s := offlineService(t, filepath.Join(t.TempDir(), "tor"), &b, argv)
	stop := runService(t, s)
	waitCheck(t, &b, 60*time.Second, "created, not published", created)
	pid := torPID(s)
	// It really is the loader running the bundled tor.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !bytes.HasPrefix(cmdline, []byte(argv[0]+"\x00")) {
		t.Errorf("tor runs as %q, want through %s", bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), argv[0])
	}
	stop()
	if alive(pid) {
		t.Fatal("bundled tor still running after stop")
	}
}

// HEARTH_ONION_TOR_CMD runs the service with another tor command, e.g. an
// arm64 bundle under qemu-user:
//
//	HEARTH_ONION_TOR_CMD="qemu-aarch64 /tmp/b/ld-linux-aarch64.so.1 --library-path /tmp/b/lib /tmp/b/tor"
func TestExternalTorCommand(t *testing.T) {
	cmd := strings.Fields(os.Getenv("HEARTH_ONION_TOR_CMD"))
	if len(cmd) == 0 {
		t.Skip("HEARTH_ONION_TOR_CMD not set")
	}
	var b status.Board
	s := offlineService(t, filepath.Join(t.TempDir(), "tor"), &b, cmd)
	s.opts.StartTimeout = 3 * time.Minute // emulation is slow
	stop := runService(t, s)
	c := waitCheck(t, &b, 4*time.Minute, "created, not published", created)
	t.Logf("%s: %s (tor %s)", c.Level, c.Detail["address"], c.Detail["tor"])
	pid := torPID(s)
	stop()
	if alive(pid) {
		t.Fatal("tor still running after stop")
	}
}

// tor accepts unix socket targets the way we pass them.
func TestUnixSocketTarget(t *testing.T) {
	needTor(t)
	var b status.Board
	s, err := New(Options{DataDir: filepath.Join(t.TempDir(), "tor"), Reporter: &b, DisableNetwork: true,
		Ports: []Port{{5222, "unix:" + filepath.Join(t.TempDir(), "c2s.sock")}, {80, "[::1]:8080"}}})
	if err != nil {
		t.Fatal(err)
	}
	runService(t, s)
	waitCheck(t, &b, 60*time.Second, "created, not published", created)
}
