//go:build e2e

package netconf

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/internal/testenv"
	"github.com/hearthchat/hearth/netconf/status"
)

// Turning Tor on in the settings and reloading gives the box an onion
// address (Debian's tor, kept off the Tor network), shown honestly as not
// yet published; turning it off again stops tor.
func TestTorFromSettings(t *testing.T) {
	testenv.NeedCommand(t, "tor", "apt package tor; make test-deps installs it")
	dir := state.Dir(t.TempDir())
	dir.Ensure()
	cfg := config.Default()
	config.Save(dir.Config(), cfg)
	s := New(Options{State: dir, Local: true, TorOffline: true, DNSResolver: "127.0.0.1:9"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return")
		}
	}()
	wait := func(what string, ok func(status.Check) bool) status.Check {
		t.Helper()
		var c status.Check
		for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			c, _ = s.Report().Get("onion")
			if ok(c) {
				return c
			}
		}
		t.Fatalf("%s: onion check is %+v", what, c)
		return c
	}
	wait("tor off by default", func(c status.Check) bool { return c.Level == status.Off })

	cfg.Net.Tor = true
	config.Save(dir.Config(), cfg)
	s.Reload()
	c := wait("onion address made", func(c status.Check) bool {
		return c.Level == status.Pending && strings.HasSuffix(c.Detail["address"], ".onion")
	})
	if c.Detail["published"] != "no" {
		t.Errorf("offline tor reported as published: %+v", c)
	}
	addr := c.Detail["address"]
	if !torRunning(t, string(dir)) {
		t.Fatal("no tor process for this state directory")
	}

	cfg.Net.Tor = false
	config.Save(dir.Config(), cfg)
	s.Reload()
	wait("tor off again", func(c status.Check) bool { return c.Level == status.Off })
	for end := time.Now().Add(10 * time.Second); torRunning(t, string(dir)); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("tor still running after Tor was turned off")
		}
	}

	// On again: the same address (the key is kept in the state directory).
	cfg.Net.Tor = true
	config.Save(dir.Config(), cfg)
	s.Reload()
	c = wait("onion address again", func(c status.Check) bool { return c.Detail["address"] != "" })
	if c.Detail["address"] != addr {
		t.Fatalf("address changed: %s, then %s", addr, c.Detail["address"])
	}
}

// torRunning reports whether a tor whose command line names dir runs.
func torRunning(t *testing.T, dir string) bool {
	out, _ := exec.Command("pgrep", "-af", "tor").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, dir) && !strings.Contains(l, "pgrep") {
			return true
		}
	}
	return false
}
