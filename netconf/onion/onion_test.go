package onion

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/internal/testenv"
	"github.com/hearthchat/hearth/netconf/status"
)

// testPorts are the appliance's onion ports with loopback targets that
// nobody listens on (tor only connects to them when a client comes).
var testPorts = []Port{{5222, "127.0.0.1:5322"}, {5269, "127.0.0.1:5369"}, {80, "127.0.0.1:8080"}}

// waitCheck polls the board until the onion check satisfies ok.
func waitCheck(t *testing.T, b *status.Board, timeout time.Duration, what string, ok func(status.Check) bool) status.Check {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last status.Check
	for time.Now().Before(deadline) {
		if c, found := b.Report().Get(CheckID); found {
			last = c
			if ok(c) {
				return c
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("onion check never became %s; last: %+v", what, last)
	return last
}

// runService runs s in the background and returns a stop function that
// cancels it and waits for Run to return.
func runService(t *testing.T, s *Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return within 30s of cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestTorMissing(t *testing.T) {
	var b status.Board
	dir := filepath.Join(t.TempDir(), "tor")
	s, err := New(Options{TorExe: []string{"/nonexistent/tor"}, DataDir: dir, Ports: testPorts, Reporter: &b, RetryMin: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := runService(t, s)
	c := waitCheck(t, &b, 5*time.Second, "error", func(c status.Check) bool { return c.Level == status.Error })
	if !strings.Contains(c.Message, "Tor program is missing") || c.Action == "" {
		t.Errorf("message/action not plain enough: %q / %q", c.Message, c.Action)
	}
	// Plain words in Message; the technical reason only in Detail.
	for _, jargon := range []string{"exec", "/nonexistent", "file", "errno"} {
		if strings.Contains(c.Message, jargon) || strings.Contains(c.Action, jargon) {
			t.Errorf("jargon %q in %q / %q", jargon, c.Message, c.Action)
		}
	}
	if !strings.Contains(c.Detail["error"], "/nonexistent/tor") {
		t.Errorf("detail lacks the technical reason: %v", c.Detail)
	}
	// The key is made anyway, so the address is known and stable.
	if !ValidAddress(s.Address()) || c.Detail["address"] != s.Address() {
		t.Errorf("address %q / detail %v", s.Address(), c.Detail)
	}
	stop()
	c, _ = b.Report().Get(CheckID)
	if c.Level != status.Off {
		t.Errorf("after stop: level %s, want off", c.Level)
	}
}

// A tor that dies at once (here: a program that is not tor) gives an
// Error and is retried, without hanging Run.
func TestTorExitsAtStart(t *testing.T) {
	falseBin := "/bin/false"
	if _, err := os.Stat(falseBin); err != nil {
		testenv.Skip(t, "no /bin/false")
	}
	var b status.Board
	s, err := New(Options{TorExe: []string{falseBin}, DataDir: t.TempDir(), Ports: testPorts, Reporter: &b, RetryMin: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runService(t, s)
	c := waitCheck(t, &b, 10*time.Second, "error", func(c status.Check) bool { return c.Level == status.Error })
	if !strings.Contains(c.Message, "Tor did not start") || c.Action == "" {
		t.Errorf("message/action: %q / %q", c.Message, c.Action)
	}
	if !strings.Contains(c.Detail["error"], "exited") {
		t.Errorf("detail: %v", c.Detail)
	}
}

func TestNewValidates(t *testing.T) {
	var b status.Board
	good := Options{DataDir: "x", Ports: testPorts, Reporter: &b}
	cases := []struct {
		name string
		mod  func(*Options)
	}{
		{"no data dir", func(o *Options) { o.DataDir = "" }},
		{"no reporter", func(o *Options) { o.Reporter = nil }},
		{"no ports", func(o *Options) { o.Ports = nil }},
		{"virtual port 0", func(o *Options) { o.Ports = []Port{{0, "127.0.0.1:1"}} }},
		{"target without port", func(o *Options) { o.Ports = []Port{{80, "127.0.0.1"}} }},
		{"target host name", func(o *Options) { o.Ports = []Port{{80, "localhost:80"}} }},
		{"target port 0", func(o *Options) { o.Ports = []Port{{80, "127.0.0.1:0"}} }},
		{"relative unix target", func(o *Options) { o.Ports = []Port{{80, "unix:run/x.sock"}} }},
		{"unix target with space", func(o *Options) { o.Ports = []Port{{80, "unix:/run/a b.sock"}} }},
	}
	if _, err := New(good); err != nil {
		t.Fatalf("good options rejected: %v", err)
	}
	unix := good
	unix.Ports = []Port{{5222, "unix:/run/hearth/onion-c2s.sock"}, {80, "[::1]:8080"}}
	if _, err := New(unix); err != nil {
		t.Fatalf("unix socket and IPv6 targets rejected: %v", err)
	}
	for _, c := range cases {
		o := good
		c.mod(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

func TestBundleCommand(t *testing.T) {
	dir := t.TempDir()
	if _, ok := BundleCommand(dir); ok {
		t.Fatal("empty dir taken for a bundle")
	}
	for _, f := range []string{"tor", "ld-linux-aarch64.so.1"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	argv, ok := BundleCommand(dir)
	want := []string{filepath.Join(dir, "ld-linux-aarch64.so.1"), "--library-path", filepath.Join(dir, "lib"), filepath.Join(dir, "tor")}
	if !ok || !reflect.DeepEqual(argv, want) {
		t.Fatalf("BundleCommand = %v, %v; want %v", argv, ok, want)
	}
}

func TestDisabled(t *testing.T) {
	var b status.Board
	Disabled(&b)
	c, ok := b.Report().Get(CheckID)
	if !ok || c.Level != status.Off || c.Message == "" {
		t.Fatalf("Disabled: %+v", c)
	}
}

func fakeService(t *testing.T, mode string, b *status.Board, mod func(*Options)) (*Service, string) {
	t.Helper()
	t.Setenv(fakeTorEnv, mode)
	dir := filepath.Join(t.TempDir(), "tor")
	o := Options{TorExe: []string{os.Args[0]}, DataDir: dir, Ports: testPorts, Reporter: b}
	if os.Getenv("HEARTH_FAKE_DEBUG") != "" {
		o.Log = os.Stderr
	}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, filepath.Join(dir, "data", "fake-tor.log")
}

func TestPublishedAfterBootstrap(t *testing.T) {
	var b status.Board
	var history []status.Check
	var mu sync.Mutex
	b.OnChange(func(r status.Report) {
		if c, ok := r.Get(CheckID); ok {
			mu.Lock()
			history = append(history, c)
			mu.Unlock()
		}
	})
	s, logPath := fakeService(t, "publish", &b, nil)
	stop := runService(t, s)
	c := waitCheck(t, &b, 10*time.Second, "ok", func(c status.Check) bool { return c.Level == status.OK })
	if c.Message != "Reachable over Tor at "+s.Address() || c.Detail["address"] != s.Address() ||
		c.Detail["published"] != "yes" || c.Detail["bootstrap"] != "100" || c.Detail["tor"] != "0.4.9.11 (fake)" {
		t.Errorf("ok check: %+v", c)
	}
	stop()

	// Before OK: starting, then made-but-unpublished with progress.
	mu.Lock()
	var sawStarting, sawProgress bool
	for _, h := range history {
		if h.Level == status.OK {
			break
		}
		if h.Level != status.Pending {
			t.Errorf("unexpected %s before ok: %q", h.Level, h.Message)
		}
		sawStarting = sawStarting || h.Message == "Starting Tor…"
		sawProgress = sawProgress || (h.Detail["published"] == "no" && strings.Contains(h.Message, "(50%)"))
	}
	mu.Unlock()
	if !sawStarting || !sawProgress {
		t.Errorf("history lacks starting (%v) or progress (%v)", sawStarting, sawProgress)
	}

	// What we asked of tor.
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	l := string(log)
	for _, want := range []string{
		"--DisableNetwork 1", "--SocksPort 0", "--CookieAuthentication 1",
		fmt.Sprintf("--__OwningControllerProcess %d", os.Getpid()),
		"--ControlPort unix:" + filepath.Join(filepath.Dir(logPath), "control.sock"),
		"CMD TAKEOWNERSHIP", "CMD RESETCONF __OwningControllerProcess",
		"Flags=DiscardPK Port=5222,127.0.0.1:5322 Port=5269,127.0.0.1:5369 Port=80,127.0.0.1:8080",
		"CMD SETCONF DisableNetwork=0",
	} {
		if !strings.Contains(l, want) {
			t.Errorf("fake tor log lacks %q:\n%s", want, l)
		}
	}
	order := []string{"CMD TAKEOWNERSHIP", "CMD ADD_ONION", "CMD SETCONF DisableNetwork=0", "EOF"}
	last := -1
	for _, w := range order {
		i := strings.Index(l, w)
		if i < last {
			t.Errorf("%q out of order in:\n%s", w, l)
		}
		last = i
	}
}

// An upload of somebody else's descriptor is not ours.
func TestOtherDescriptorNotOurs(t *testing.T) {
	var b status.Board
	s, _ := fakeService(t, "other", &b, nil)
	runService(t, s)
	// The fake sends the other service's upload before the last
	// bootstrap step, so once 100% shows, the upload has been handled.
	c := waitCheck(t, &b, 10*time.Second, "bootstrapped or published", func(c status.Check) bool {
		return c.Detail["bootstrap"] == "100" || c.Level != status.Pending
	})
	if c.Level != status.Pending || c.Detail["published"] != "no" {
		t.Fatalf("after another service's upload: %+v", c)
	}
}

func TestBootstrapTimeoutRetries(t *testing.T) {
	var b status.Board
	s, logPath := fakeService(t, "stuck", &b, func(o *Options) {
		o.BootstrapTimeout = 400 * time.Millisecond
		o.RetryMin = 100 * time.Millisecond
	})
	runService(t, s)
	c := waitCheck(t, &b, 10*time.Second, "error", func(c status.Check) bool { return c.Level == status.Error })
	if !strings.Contains(c.Message, "could not connect to the Tor network") || !strings.Contains(c.Action, "internet") {
		t.Errorf("error check: %q / %q", c.Message, c.Action)
	}
	if !strings.Contains(c.Detail["error"], "50%") || c.Detail["address"] != s.Address() {
		t.Errorf("detail: %v", c.Detail)
	}
	// tor is started again after the back-off, same address.
	deadline := time.Now().Add(10 * time.Second)
	for {
		log, _ := os.ReadFile(logPath)
		if strings.Count(string(log), "ARGS ") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tor not restarted after the bootstrap timeout:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, _ := LoadAddress(s.opts.DataDir); got != s.Address() {
		t.Errorf("address changed across restarts: %s vs %s", got, s.Address())
	}
}

// Losing the Tor network after publishing is a warning, and clears when
// tor is back.
func TestNetworkLostAndBack(t *testing.T) {
	// Every change is kept: the warning lasts only as long as the fake
	// keeps the network down, and polling the board could miss it on a
	// busy machine.
	var b status.Board
	var mu sync.Mutex
	var history []status.Check
	changed := make(chan struct{}, 1)
	b.OnChange(func(r status.Report) {
		if c, ok := r.Get(CheckID); ok {
			mu.Lock()
			history = append(history, c)
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	})
	s, _ := fakeService(t, "flaky", &b, nil)
	runService(t, s)
	steps := []struct {
		what string
		ok   func(status.Check) bool
	}{
		{"ok", func(c status.Check) bool { return c.Level == status.OK }},
		{"warn", func(c status.Check) bool { return c.Level == status.Warn }},
		{"ok again", func(c status.Check) bool { return c.Level == status.OK && c.Detail["network"] == "on" }},
	}
	seen, step := 0, 0
	deadline := time.After(10 * time.Second)
	for step < len(steps) {
		mu.Lock()
		for ; seen < len(history) && step < len(steps); seen++ {
			if c := history[seen]; steps[step].ok(c) {
				if steps[step].what == "warn" && (!strings.Contains(c.Message, "lost its connection") || c.Action == "" || c.Detail["network"] != "down") {
					t.Errorf("warn check: %+v", c)
				}
				step++
			}
		}
		mu.Unlock()
		if step == len(steps) {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			mu.Lock()
			t.Fatalf("onion check never became %s; changes: %+v", steps[step].what, history)
		}
	}
}
