//go:build e2e

package netns

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNamespacesVethSweep(t *testing.T) {
	Need(t)
	if err := Sweep("hnc-nstest"); err != nil {
		t.Fatal(err)
	}
	a := New(t, "hnc-nstest-a")
	b := New(t, "hnc-nstest-b")
	Link(t, a, "va", "10.99.0.1/24", b, "vb", "10.99.0.2/24")

	out := a.MustRun(t, "ip", "-o", "-4", "addr", "show", "dev", "va")
	if !strings.Contains(out, "10.99.0.1/24") {
		t.Fatalf("address in a: %s", out)
	}
	if out := b.MustRun(t, "ip", "-o", "link", "show"); !strings.Contains(out, "vb@") || strings.Contains(out, "va@") {
		t.Fatalf("links in b: %s", out)
	}
	// Nothing leaked into the namespace the test runs in.
	if out, _ := run("ip", "-o", "link", "show"); strings.Contains(out, " va@") || strings.Contains(out, " vb@") {
		t.Fatalf("veth end in the host namespace: %s", out)
	}
	// b reaches a over the pair (the kernel answers ARP: the neighbour
	// becomes reachable).
	b.Run("bash", "-c", "exec 3<>/dev/tcp/10.99.0.1/9 || true")
	if out := b.MustRun(t, "ip", "neigh", "show", "10.99.0.1"); !strings.Contains(out, "lladdr") {
		t.Fatalf("a not reachable from b: %q", out)
	}

	// Delete ends what runs inside, and Sweep removes leftovers.
	sleeper := a.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()
	// Sweep must find it inside: wait until the namespace lists it.
	for deadline := time.Now().Add(5 * time.Second); !slices.Contains(a.pids(), sleeper.Process.Pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("sleep never showed up in the namespace")
		}
	}
	if err := Sweep("hnc-nstest"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("process inside the namespace survived its deletion")
	}
	for _, n := range []string{"hnc-nstest-a", "hnc-nstest-b"} {
		if _, err := os.Stat("/run/netns/" + n); err == nil {
			t.Errorf("%s still exists", n)
		}
	}
}
