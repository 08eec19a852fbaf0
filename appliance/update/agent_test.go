package update

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/internal/testenv"
)

// bootFAT makes a FAT16 boot partition image holding cmdline.txt the way gok
// writes it (no newline, space padding), using dosfstools and mtools.
func bootFAT(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"mkfs.fat", "mcopy", "mtype"} {
		testenv.NeedCommand(t, tool, "apt packages dosfstools and mtools; make test-deps installs them")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "boot.fat")
	if out, err := exec.Command("mkfs.fat", "-F", "16", "-C", img, "16384").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.fat: %v\n%s", err, out)
	}
	cmdline := "console=ttyS0,115200 root=PARTUUID=60c24cc1-f3f9-427a-8199-a0d919d10001/PARTNROFF=1 ro init=/gokrazy/init panic=10" + strings.Repeat(" ", 64)
	src := filepath.Join(dir, "cmdline.txt")
	os.WriteFile(src, []byte(cmdline), 0o644)
	// Files first so cmdline.txt is not the only one in the directory.
	os.WriteFile(filepath.Join(dir, "config.txt"), []byte("arm_64bit=1\n"), 0o644)
	for _, f := range []string{"config.txt", "cmdline.txt"} {
		if out, err := exec.Command("mcopy", "-i", img, filepath.Join(dir, f), "::/"+f).CombinedOutput(); err != nil {
			t.Fatalf("mcopy: %v\n%s", err, out)
		}
	}
	return img
}

func mtype(t *testing.T, img, name string) string {
	t.Helper()
	out, err := exec.Command("mtype", "-i", img, "::/"+name).Output()
	if err != nil {
		t.Fatalf("mtype: %v", err)
	}
	return string(out)
}

// gokrazyInit does to cmdline.txt what gokrazy's init does on a trial boot.
func gokrazyInit(t *testing.T, b *BootConfig) {
	t.Helper()
	if err := b.edit(func(toks []string) ([]string, error) {
		for i, tok := range toks {
			if tok == tryFlag {
				toks[i] = switchedFlag
			}
		}
		return toks, nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestTrialFlags(t *testing.T) {
	img := bootFAT(t)
	b := &BootConfig{Device: img}
	before := mtype(t, img, "cmdline.txt")
	if st, err := b.TrialState(); err != nil || st != "" {
		t.Fatalf("fresh TrialState = %q, %v", st, err)
	}
	if err := b.EnableTrial(); err != nil {
		t.Fatal(err)
	}
	after := mtype(t, img, "cmdline.txt")
	if len(after) != len(before) || !strings.Contains(after, " "+tryFlag) || !strings.HasPrefix(after, strings.TrimSpace(before)) {
		t.Fatalf("after EnableTrial cmdline.txt = %q (was %q)", after, before)
	}
	if st, _ := b.TrialState(); st != "pending" {
		t.Fatalf("TrialState = %q, want pending", st)
	}
	gokrazyInit(t, b)
	if st, _ := b.TrialState(); st != "started" {
		t.Fatalf("TrialState = %q, want started", st)
	}
	if err := b.ClearTrial(); err != nil {
		t.Fatal(err)
	}
	if got := mtype(t, img, "cmdline.txt"); got != before {
		t.Fatalf("after ClearTrial cmdline.txt = %q, want %q", got, before)
	}
	if out, err := exec.Command("fsck.fat", "-n", img).CombinedOutput(); err != nil {
		t.Fatalf("fsck.fat after edits: %v\n%s", err, out)
	}
}

func TestRewriteCmdlineNeverGrows(t *testing.T) {
	_, err := rewriteCmdline("root=x ", func(toks []string) ([]string, error) { return append(toks, tryFlag), nil })
	if err == nil {
		t.Fatal("rewriteCmdline grew the file")
	}
	got, err := rewriteCmdline("a b c\n", func(toks []string) ([]string, error) { return toks[:1], nil })
	if err != nil || got != "a    \n" {
		t.Fatalf("rewriteCmdline = %q, %v", got, err)
	}
}

// fakeGokrazy serves gokrazy's update API on a unix socket and records calls.
type fakeGokrazy struct {
	mu    sync.Mutex
	calls []string
	root  []byte
}

func startFakeGokrazy(t *testing.T) (*fakeGokrazy, *Gokrazy) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "gokrazy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeGokrazy{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, r.Method+" "+r.URL.Path)
		if r.URL.Path == "/update/root" {
			b, _ := io.ReadAll(r.Body)
			f.root = b
			s := sha256.Sum256(b)
			io.WriteString(w, hex.EncodeToString(s[:]))
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f, &Gokrazy{Socket: sock}
}

func (f *fakeGokrazy) called() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ", ")
}

func newAgent(t *testing.T, release int, g *Gokrazy, boot *BootConfig, health error) *Agent {
	st := state.Dir(t.TempDir())
	return &Agent{
		State:   st,
		Client:  &Client{Dir: st.Update(), Arch: "amd64", Running: release},
		Gokrazy: g,
		Boot:    boot,
		Health:  func(context.Context) error { return health },
		Version: "test",
		Release: release,
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func TestInstallBootsOnTrial(t *testing.T) {
	f := newFeed(t)
	p := payload(t, 100<<10)
	f.publish(f.keys, 2, p, nil)
	fake, g := startFakeGokrazy(t)
	boot := &BootConfig{Device: bootFAT(t)}
	a := newAgent(t, 1, g, boot, nil)
	a.Client.TrustedRoot = f.keys.Root
	if err := a.CheckOnce(context.Background(), config.Update{Auto: true, FeedURL: f.srv.URL}); err != nil {
		t.Fatal(err)
	}
	if got := fake.called(); got != "PUT /update/root, POST /reboot" {
		t.Fatalf("gokrazy calls = %s", got)
	}
	if string(fake.root) != string(p) {
		t.Fatal("the root written differs from the release")
	}
	if st, _ := boot.TrialState(); st != "pending" {
		t.Fatalf("TrialState = %q, want pending", st)
	}
	tr, err := a.loadTrial()
	if err != nil || tr == nil || tr.Release != 2 {
		t.Fatalf("trial record = %+v, %v", tr, err)
	}
}

func TestRefusedUpdateWritesNothing(t *testing.T) {
	f := newFeed(t)
	other, err := LoadOrCreateKeys(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	f.publish(other, 2, payload(t, 1000), nil) // signed with keys the box does not trust
	fake, g := startFakeGokrazy(t)
	boot := &BootConfig{Device: bootFAT(t)}
	a := newAgent(t, 1, g, boot, nil)
	a.Client.TrustedRoot = f.keys.Root
	if err := a.CheckOnce(context.Background(), config.Update{Auto: true, FeedURL: f.srv.URL}); err == nil {
		t.Fatal("CheckOnce accepted a feed signed with the wrong key")
	}
	if got := fake.called(); got != "" {
		t.Fatalf("gokrazy calls after a refusal: %s", got)
	}
	if st, _ := boot.TrialState(); st != "" {
		t.Fatalf("TrialState = %q after a refusal", st)
	}
	if s := a.Status(); s.State != "error" {
		t.Fatalf("status = %+v", s)
	}
}

func TestResolveTrial(t *testing.T) {
	cases := []struct {
		name      string
		running   int
		health    error
		wantCalls string
		wantRes   string
		floor     int
	}{
		{"healthy new version commits", 2, nil, "POST /update/switch", "committed release 2", 2},
		{"unhealthy new version rolls back", 2, errors.New("storage check failed"), "POST /reboot", "rolled back release 2: health gate failed", 0},
		{"old version after a failed trial", 1, nil, "", "rolled back release 2: it did not pass", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake, g := startFakeGokrazy(t)
			boot := &BootConfig{Device: bootFAT(t)}
			before, _ := boot.Read()
			a := newAgent(t, c.running, g, boot, c.health)
			if err := a.saveTrial(&Trial{Release: 2, Version: "2", Installed: time.Now()}); err != nil {
				t.Fatal(err)
			}
			if err := boot.EnableTrial(); err != nil {
				t.Fatal(err)
			}
			gokrazyInit(t, boot) // the trial boot happened
			if err := a.ResolveTrial(context.Background(), 3*time.Second); err != nil {
				t.Fatal(err)
			}
			if got := fake.called(); got != c.wantCalls {
				t.Errorf("gokrazy calls = %q, want %q", got, c.wantCalls)
			}
			if s := a.Status(); !strings.HasPrefix(s.LastResult, c.wantRes) {
				t.Errorf("last result = %q, want prefix %q", s.LastResult, c.wantRes)
			}
			if after, _ := boot.Read(); after != before {
				t.Errorf("cmdline.txt not restored: %q", after)
			}
			if tr, _ := a.loadTrial(); tr != nil {
				t.Errorf("trial record left: %+v", tr)
			}
			if fl, _ := LoadFloors(a.dir()); fl.Release != c.floor {
				t.Errorf("release floor = %d, want %d", fl.Release, c.floor)
			}
			if c.floor != 0 {
				// Right after a commit, gokrazy's idea of the inactive
				// partition is stale: the next install must reboot first.
				f := newFeed(t)
				f.publish(f.keys, 3, payload(t, 1000), nil)
				a.Client.TrustedRoot = f.keys.Root
				a.Client.Running = 2
				fake.mu.Lock()
				fake.calls = nil
				fake.mu.Unlock()
				if err := a.CheckOnce(context.Background(), config.Update{Auto: true, FeedURL: f.srv.URL}); err != nil {
					t.Fatal(err)
				}
				if got := fake.called(); got != "POST /reboot" {
					t.Errorf("install right after a commit: gokrazy calls = %q, want only a reboot", got)
				}
			}
			// The result survives a restart of the agent.
			b := newAgent(t, c.running, g, boot, nil)
			b.State = a.State
			if err := b.ResolveTrial(context.Background(), time.Second); err != nil {
				t.Fatal(err)
			}
			if s := b.Status(); s.LastResult != a.Status().LastResult {
				t.Errorf("after restart last result = %q", s.LastResult)
			}
		})
	}
}

func TestRetryAfterFailedCheck(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 5: 16 * time.Minute, 12: 24 * time.Hour, 40: 24 * time.Hour} {
		if got := retryAfter(n); got != want {
			t.Errorf("retryAfter(%d) = %v, want %v", n, got, want)
		}
	}
}
