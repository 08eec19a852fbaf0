//go:build e2e

package image_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/update"
	"github.com/hearthchat/hearth/image"
	"github.com/hearthchat/hearth/image/vm"
	"github.com/hearthchat/hearth/xmppd/client"
)

// feedAddr is where the guest finds the feed: qemu's guestfwd connects it to
// the test's server on the host's loopback. Nothing else leaves the guest.
const feedAddr = "10.0.2.100:80"

// TestVMUpdates walks one VM through the update agent's life: refusals of a
// wrong key, stale metadata and a truncated download while release 1 keeps
// running; release 1 -> 2 through a trial boot; refusal of an older release;
// the automatic rollback of a release 3 whose xmppd cannot start; and a
// power cut during the trial of release 4, after which release 2 boots.
func TestVMUpdates(t *testing.T) {
	gok(t)
	repo := repoDir(t)
	keys, err := update.LoadOrCreateKeys(filepath.Join(repo, "keys"))
	if err != nil {
		t.Fatal(err)
	}

	// Release 1 with the agent pointed at the feed, polling every 3 s.
	cfg := config.Default()
	cfg.Update.FeedURL = "http://" + feedAddr + "/"
	cfg.Update.CheckEvery = "3s"
	cfg.Update.HealthTimeout = "40s"
	v1 := buildVMImageWith(t, "1", func(state string) {
		if err := config.Save(filepath.Join(state, "config.json"), cfg); err != nil {
			t.Fatal(err)
		}
	})

	// Releases 2 and 3 as update payloads (root file systems).
	out := t.TempDir()
	root2 := filepath.Join(out, "root2.squashfs")
	if err := builder(t, "2").Root(image.VM, root2); err != nil {
		t.Fatalf("%v\n%s", err, gokLog(t))
	}
	b3 := builder(t, "3")
	b3.Overrides = brokenXmppd(t, repo)
	root3 := filepath.Join(out, "root3.squashfs")
	if err := b3.Root(image.VM, root3); err != nil {
		t.Fatalf("%v\n%s", err, gokLog(t))
	}
	b4 := builder(t, "4")
	b4.Overrides = b3.Overrides
	root4 := filepath.Join(out, "root4.squashfs")
	if err := b4.Root(image.VM, root4); err != nil {
		t.Fatalf("%v\n%s", err, gokLog(t))
	}
	st, _ := os.Stat(root2)
	t.Logf("update download size (root squashfs, release 2): %d bytes", st.Size())

	feedDir := t.TempDir()
	srv := serveFeed(t, feedDir)
	publish := func(k *update.Keys, release int, root string, mod func(*update.Release)) {
		t.Helper()
		r := update.Release{Custom: update.Custom{Release: release, Version: fmt.Sprint(release)}, Files: map[string]string{"amd64": root}}
		if mod != nil {
			mod(&r)
		}
		if err := update.Publish(feedDir, k, r); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	v, port := bootVMWith(t, v1.Path, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	if err := v.WaitXMPP(ctx, port, v1.Domain); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot to XMPP answering: %v", time.Since(start).Round(100*time.Millisecond))
	chat(t, v1, port, "before any update")
	waitSerial(t, ctx, v, "hearth-updater: started: version 1 ", 60*time.Second)

	// Refusals, each while release 1 keeps running.
	other, err := update.LoadOrCreateKeys(filepath.Join(t.TempDir(), "other-keys"))
	if err != nil {
		t.Fatal(err)
	}
	mark := v.SerialLog()
	publish(other, 2, root2, nil)
	waitSerialAfter(t, ctx, v, mark, "feed metadata refused", 60*time.Second)

	mark = v.SerialLog()
	publish(keys, 2, root2, func(r *update.Release) {
		r.Now = time.Now().Add(-10 * 24 * time.Hour)
		r.TimestampExpiry = 7 * 24 * time.Hour
	})
	waitSerialAfter(t, ctx, v, mark, "expired", 60*time.Second)

	mark = v.SerialLog()
	publish(keys, 2, root2, nil)
	target := filepath.Join(feedDir, "targets", update.TargetName("amd64"))
	if err := os.Truncate(target, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	waitSerialAfter(t, ctx, v, mark, "download of "+update.TargetName("amd64")+" refused", 90*time.Second)
	if strings.Contains(v.SerialLog(), "rebooting into its trial") {
		t.Fatal("a refused update was installed")
	}
	chat(t, v1, port, "still release 1 after the refusals")
	// History: a message bob has not fetched yet sits in release 1's store.
	chatMode(t, v1, port, "store", "kept across the update to release 2")

	// Release 1 -> 2, with a member online: the reboot drains (the client
	// is told system-shutdown) instead of cutting the connection.
	drained := stayOnline(t, v1, port)
	mark = v.SerialLog()
	available := time.Now()
	publish(keys, 2, root2, nil)
	waitSerialAfter(t, ctx, v, mark, "committed release 2", 4*time.Minute)
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("member online during the update: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the member online during the update heard nothing")
	}
	committed := time.Since(available)
	if err := v.WaitXMPP(ctx, port, v1.Domain); err != nil {
		t.Fatal(err)
	}
	t.Logf("update available to release 2 committed: %v; serving XMPP: %v", committed.Round(100*time.Millisecond), time.Since(available).Round(100*time.Millisecond))
	chatMode(t, v1, port, "fetch", "kept across the update to release 2")
	chat(t, v1, port, "after the update to release 2")

	// An older release is refused.
	mark = v.SerialLog()
	publish(keys, 1, root2, nil)
	waitSerialAfter(t, ctx, v, mark, "older release", 60*time.Second)
	if strings.Contains(v.SerialLog()[len(mark):], "rebooting into its trial") {
		t.Fatal("an older release was installed")
	}

	// Release 3 cannot start xmppd: its trial fails the health gate and the
	// box goes back to release 2 by itself.
	chatMode(t, v1, port, "store", "kept across the rollback of release 3")
	mark = v.SerialLog()
	available = time.Now()
	publish(keys, 3, root3, nil)
	waitSerialAfter(t, ctx, v, mark, "rolled back release 3", 4*time.Minute)
	// Either the gate said so before the box restarted, or the box
	// restarted during the trial and the next boot says the trial never
	// passed (a CI run took that path): both are the rollback asked for.
	if log := v.SerialLog()[len(mark):]; !strings.Contains(log, "health gate failed") &&
		!strings.Contains(log, "did not pass its health gate") {
		t.Fatalf("release 3 rolled back without a health-gate reason on the console")
	}
	waitSerialAfter(t, ctx, v, mark, "hearth-updater: started: version 2 ", 3*time.Minute)
	if err := v.WaitXMPP(ctx, port, v1.Domain); err != nil {
		t.Fatal(err)
	}
	waitSerialAfter(t, ctx, v, mark, "release 3 failed its trial on this box", 60*time.Second)
	chatMode(t, v1, port, "fetch", "kept across the rollback of release 3")
	chat(t, v1, port, "back on release 2 after the rollback")
	t.Logf("release 3 published to back on release 2 and serving: %v", time.Since(available).Round(100*time.Millisecond))

	// Power lost during a trial: release 4 (again with a broken xmppd) is
	// booted on trial and the box is cut off before its gate can decide.
	// The next boot must be release 2 without any help from the agent.
	mark = v.SerialLog()
	publish(keys, 4, root4, nil)
	waitSerialAfter(t, ctx, v, mark, "hearth-updater: started: version 4 ", 3*time.Minute)
	waitSerialAfter(t, ctx, v, mark, "release 4 on trial", 60*time.Second)
	serial := v.SerialLog()
	v.Stop()
	v, port = bootVMWith(t, v1.Path, srv)
	if err := v.WaitXMPP(ctx, port, v1.Domain); err != nil {
		t.Fatal(err)
	}
	waitSerial(t, ctx, v, "hearth-updater: started: version 2 ", 60*time.Second)
	waitSerial(t, ctx, v, "rolled back release 4: it did not pass its health gate before the box restarted", 60*time.Second)
	chat(t, v1, port, "back on release 2 after the power cut")

	// What the box said, without the periodic checks.
	var lines []string
	for _, l := range strings.Split(serial+v.SerialLog(), "\n") {
		if (strings.Contains(l, "hearth-updater") && !strings.Contains(l, "checking:") && !strings.Contains(l, "failed its trial on this box")) ||
			strings.Contains(l, "switching to inactive") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	t.Logf("agent on the serial console:\n%s", strings.Join(lines, "\n"))
}

// stayOnline logs Alice in with a client of our own and reports on the
// channel how her stream ended: nil for a system-shutdown stream error.
func stayOnline(t *testing.T, v vmImage, port int) <-chan error {
	t.Helper()
	pem, err := os.ReadFile(v.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	name, pw, _ := strings.Cut(v.Alice, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: fmt.Sprintf("127.0.0.1:%d", port), Domain: v.Domain,
		User: name, Password: pw, Resource: "online-during-update", Timeout: 30 * time.Second,
		TLS: &tls.Config{RootCAs: roots, ServerName: v.Domain, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatalf("log in to stay online: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	done := make(chan error, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(8 * time.Minute))
		for {
			_, err := c.ReadStanza()
			var se *client.Error
			switch {
			case err == nil:
				continue
			case errors.As(err, &se) && strings.Contains(se.Condition, "system-shutdown"):
				done <- nil
			case errors.As(err, &se):
				done <- fmt.Errorf("stream ended with %s, want system-shutdown", se.Condition)
			default:
				done <- fmt.Errorf("connection ended without a stream error: %v", err)
			}
			return
		}
	}()
	return done
}

// brokenXmppd makes release 3's xmppd exit at once (an unknown flag), the
// way a release with a bad migration or a crash at start would look.
func brokenXmppd(t *testing.T, repo string) map[string]json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		PackageConfig map[string]map[string]any
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.PackageConfig == nil {
		cfg.PackageConfig = map[string]map[string]any{}
	}
	cfg.PackageConfig["github.com/hearthchat/hearth/cmd/xmppd"] = map[string]any{
		"CommandLineFlags": []string{"-this-release-is-broken"},
	}
	pc, err := json.Marshal(cfg.PackageConfig)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]json.RawMessage{"PackageConfig": pc}
}

func serveFeed(t *testing.T, dir string) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func waitSerial(t *testing.T, ctx context.Context, v *vm.VM, s string, d time.Duration) {
	t.Helper()
	waitSerialAfter(t, ctx, v, "", s, d)
}

// waitSerialAfter waits for s to appear in the serial log after its first
// len(mark) bytes.
func waitSerialAfter(t *testing.T, ctx context.Context, v *vm.VM, mark, s string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		log := v.SerialLog()
		if len(log) >= len(mark) && strings.Contains(log[len(mark):], s) {
			return
		}
		if exited, err := v.Exited(); exited {
			t.Fatalf("qemu exited (%v) while waiting for %q", err, s)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%q not on the serial console within %v", s, d)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
