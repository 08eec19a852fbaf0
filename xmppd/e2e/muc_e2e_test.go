//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSlixmppMUC: slixmpp's xep_0045 plugin against groups.<domain>
// (xmppd) or prosody's MUC component (HEARTH_E2E_SERVER=prosody): several
// members in one room across a reconnect, messages, subject, a
// non-occupant's message refused, a kick (testdata/muc.py "live"); the
// server is killed with SIGKILL while alice sends numbered room messages,
// and after the restart every message the room had echoed to her (it fans
// out only after the commit) is in bob's history on join and in the room's
// archive ("after").
func TestSlixmppMUC(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	users := []string{account(t, s, "alice"), account(t, s, "bob"), account(t, s, "carol")}
	args := func(scenario string, extra ...string) []string {
		a := scenarioArgs(s, users...)
		a[0] = filepath.Join("testdata", "muc.py")
		return append(append(a, extra...), scenario)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython, args("live", "--count", "200")...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill the server while messages are in flight, after the 15th
	// acknowledged one.
	acked, killed := 0, false
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if n, ok := strings.CutPrefix(line, "ACKED "); ok {
			acked, _ = strconv.Atoi(n)
			if acked == 15 && !killed {
				s.Kill(t)
				killed = true
			}
		}
	}
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("the live scenario ended before 15 messages (%v):\n%s", werr, strings.Join(lines, "\n"))
	}
	t.Logf("killed the server after %d acknowledged room messages", acked)

	s.Start(t)
	c := exec.CommandContext(ctx, debianPython, args("after", "--acked", strconv.Itoa(acked))...)
	b, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "OK after") {
		t.Fatalf("after the restart: %v\n%s", err, b)
	}
}
