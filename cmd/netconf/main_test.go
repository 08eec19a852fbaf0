package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/netconf"
)

// `netconf status` asks the running service, and falls back to the last
// report on disk (marked as such) when the service is not running.
func TestStatusCommand(t *testing.T) {
	if os.Getenv("NETCONF_TEST_CHILD") != "" {
		os.Exit(command(state.Dir(os.Getenv("NETCONF_TEST_DIR")), "status", nil))
	}
	dir := state.Dir(t.TempDir())
	s := netconf.New(netconf.Options{State: dir, Local: true, DNSResolver: "127.0.0.1:9"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, ok := s.Report().Get("lan"); ok {
			break
		}
		if time.Now().After(end) {
			t.Fatal("no LAN check")
		}
	}
	run := func() (string, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStatusCommand$")
		cmd.Env = append(os.Environ(), "NETCONF_TEST_CHILD=1", "NETCONF_TEST_DIR="+string(dir))
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run()
		return out.String(), errb.String()
	}
	out, _ := run()
	if !strings.Contains(out, "Home network: ") || !strings.Contains(out, "(as of ") {
		t.Fatalf("status output:\n%s", out)
	}
	cancel()
	<-done
	out, errs := run()
	if !strings.Contains(errs, "not running") || !strings.Contains(out, "Home network: ") {
		t.Fatalf("status with netconf stopped:\nstdout %s\nstderr %s", out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir.Status(), "netconf.json")); err != nil {
		t.Fatal(err)
	}
}
