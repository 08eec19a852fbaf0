//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/store"
)

// member is an account a test box starts with.
type member struct {
	name, pw string
	admin    bool
}

// anna is the admin every claimed test box has.
var anna = member{"anna", "green kettle river", true}

// buildBins builds the named commands of cmd/ into a fresh directory.
func buildBins(t *testing.T, cmds ...string) string {
	t.Helper()
	bins := t.TempDir()
	args := []string{"build", "-o", bins + "/"}
	for _, c := range cmds {
		args = append(args, "github.com/hearthchat/hearth/cmd/"+c)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bins
}

// claimedState makes dir a state directory that is already set up, as the
// wizard leaves it (the wizard itself is TestFirstBootInBrowser's): the
// members exist, anna is the admin, the config says claimed. also, if not
// nil, adds to the store before it is closed.
func claimedState(t *testing.T, dir state.Dir, members []member, also func(*store.Store) error) {
	t.Helper()
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir.DB())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if err := st.CreateAccount(m.name, m.pw, m.admin); err != nil {
			t.Fatal(err)
		}
	}
	if also != nil {
		if err := also(st); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	c := config.Default()
	c.Domain, c.Claimed = "hearth.localhost", true
	c.Site = config.Site{Name: "Riverside Rowing Club", Reach: "home", Admin: "anna", Done: true}
	if err := config.Save(dir.Config(), c); err != nil {
		t.Fatal(err)
	}
}

// startNetconf runs netconf (from bins) beside the box, as on the box and
// as make run has it, until the test ends.
func startNetconf(t *testing.T, bins string, dir state.Dir) {
	t.Helper()
	nc := exec.Command(filepath.Join(bins, "netconf"), "-state", string(dir), "-local")
	if err := nc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Process.Kill(); nc.Wait() })
}

// startClaimed starts xmppd (from bins) on dir with its client, TLS and
// web ports free ports on loopback and extra arguments after those, and
// waits until the client and web ports listen.
func startClaimed(t *testing.T, bins string, dir state.Dir, extra ...string) *xmppd {
	t.Helper()
	x := &xmppd{state: string(dir), c2s: fmt.Sprintf("127.0.0.1:%d", freePort(t)), web: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	args := append([]string{"-state", x.state, "-domain", "hearth.localhost", "-c2s", x.c2s,
		"-c2s-tls", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-c2s-onion", "none", "-web", x.web, "-require-setup", "true"}, extra...)
	x.cmd = exec.Command(filepath.Join(bins, "xmppd"), args...)
	x.cmd.Stderr = os.Stderr
	if err := x.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.cmd.Process.Kill(); x.cmd.Wait() })
	waitPort(t, x.c2s)
	waitPort(t, x.web)
	return x
}
