//go:build e2e

package upload_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUploadServerRSS: a real xmppd process (cmd/xmppd -dev) takes a
// 100 MiB PUT while the test samples its resident memory every 20 ms.
// The file streams to disk, so the peak may grow by a few MiB at most, not
// by anything like the file (a Pi has 1 GiB for everything). The file
// comes back byte-identical. Figures are logged (kept in the module's
// report: +0.4 MiB over a 16.6 MiB process on the first run).
func TestUploadServerRSS(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatalf("Debian's python3 with python3-slixmpp is needed (make test-deps): %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "xmppd")
	build := exec.Command("go", "build", "-o", bin, "github.com/hearthchat/hearth/cmd/xmppd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build xmppd: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "state")
	c2s, plain, web := freePort(t), freePort(t), freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-dev", "-state", state, "-c2s", "127.0.0.1:"+plain, "-c2s-tls", "127.0.0.1:"+c2s,
		"-web", "127.0.0.1:"+web, "-web-tls", "none", "-turn", "none", "-proxy65", "none", "-c2s-onion", "none",
		"-require-setup", "false")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	// The dev banner names the admin account and its password.
	var user, password string
	var log strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() && (user == "" || password == "") {
		l := sc.Text()
		log.WriteString(l + "\n")
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "address:"); ok {
			user = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "password:"); ok {
			password = strings.TrimSpace(v)
		}
	}
	if password == "" {
		t.Fatalf("no admin account in the dev banner:\n%s", log.String())
	}
	go io.Copy(io.Discard, out)

	const size = 100 << 20
	slot := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("testdata", "slot.py"),
		user, password, c2s, filepath.Join(state, "tls", "cert.pem"), "film.mp4", strconv.Itoa(size), "video/mp4")
	so, err := slot.CombinedOutput()
	url := ""
	for _, l := range strings.Split(string(so), "\n") {
		if u, ok := strings.CutPrefix(l, "PUT "); ok {
			url = strings.TrimSpace(u)
		}
	}
	if err != nil || url == "" {
		t.Fatalf("slot: %v\n%s", err, so)
	}

	pid := cmd.Process.Pid
	before := status(t, pid, "VmHWM")
	rest := status(t, pid, "VmRSS")
	var mu sync.Mutex
	peak := rest
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if v := status(t, pid, "VmRSS"); v > 0 {
					mu.Lock()
					peak = max(peak, v)
					mu.Unlock()
				}
			}
		}
	}()
	sum := sha256.New()
	body := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), sum)
	req, _ := http.NewRequest("PUT", url, body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "video/mp4")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	took := time.Since(start)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("PUT: %s", resp.Status)
	}
	hwm := status(t, pid, "VmHWM")
	t.Logf("100 MiB PUT in %v (%.0f MiB/s); xmppd RSS at rest %d KiB, sampled peak %d KiB, VmHWM %d → %d KiB",
		took.Round(time.Millisecond), float64(size>>20)/took.Seconds(), rest, peak, before, hwm)
	if grown := max(peak, hwm) - max(rest, before); grown > 32<<10 {
		t.Errorf("xmppd's peak memory grew by %d KiB during a 100 MiB upload", grown)
	}
	get, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer get.Body.Close()
	back := sha256.New()
	n, _ := io.Copy(back, get.Body)
	if n != size || string(back.Sum(nil)) != string(sum.Sum(nil)) {
		t.Errorf("download: %d bytes, same %v", n, string(back.Sum(nil)) == string(sum.Sum(nil)))
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// status reads a "kB" field of /proc/PID/status (0 if it is gone).
func status(t *testing.T, pid int, key string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
