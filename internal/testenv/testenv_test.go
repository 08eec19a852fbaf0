package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestInCI(t *testing.T) {
	for v, want := range map[string]bool{"": false, "true": true, "1": true, "false": false, "0": false, "yes": true} {
		t.Setenv("CI", v)
		if got := InCI(); got != want {
			t.Errorf("CI=%q: InCI() = %v, want %v", v, got, want)
		}
	}
}

func TestLookCommand(t *testing.T) {
	if LookCommand("sh") == "" {
		t.Error("sh not found")
	}
	if p := LookCommand("hearth-no-such-command"); p != "" {
		t.Errorf("found a missing command at %q", p)
	}
}

// helperEnv selects which check TestHelper makes in the child process.
const helperEnv = "HEARTH_TESTENV_HELPER"

// TestHelper is not a test: TestCIFailsInsteadOfSkipping runs it in a
// child process (t.Fatal and t.Skip end the calling test, so the outcome
// can only be watched from outside).
func TestHelper(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "":
		t.Skip("helper process for TestCIFailsInsteadOfSkipping")
	case "command":
		NeedCommand(t, "hearth-no-such-command", "nowhere")
	case "root":
		geteuid = func() int { return 1000 }
		NeedRoot(t, "to make network namespaces")
	case "skip":
		Skip(t, "peer is down")
	case "present":
		NeedCommand(t, "sh", "base system")
		geteuid = func() int { return 0 }
		NeedRoot(t, "nothing")
	}
	t.Log("reached the end")
}

func TestCIFailsInsteadOfSkipping(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mode, ci string
		fail     bool   // the child exits non-zero
		want     string // in its output
	}{
		{"command", "true", true, "--- FAIL: TestHelper"},
		{"command", "", false, "--- SKIP: TestHelper"},
		{"command", "false", false, "--- SKIP: TestHelper"},
		{"root", "true", true, "needs root: to make network namespaces"},
		{"root", "", false, "--- SKIP: TestHelper"},
		{"skip", "1", true, "peer is down (CI is set"},
		{"skip", "", false, "--- SKIP: TestHelper"},
		{"present", "true", false, "reached the end"},
	} {
		cmd := exec.Command(exe, "-test.run", "^TestHelper$", "-test.v")
		cmd.Env = append(os.Environ(), helperEnv+"="+c.mode, "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != c.fail || !strings.Contains(string(out), c.want) {
			t.Errorf("%s with CI=%q: exit error %v (want failure: %v), output lacks %q:\n%s", c.mode, c.ci, err, c.fail, c.want, out)
		}
		if c.mode == "command" && !strings.Contains(string(out), "hearth-no-such-command is not installed (nowhere)") {
			t.Errorf("%s with CI=%q: the reason is not shown:\n%s", c.mode, c.ci, out)
		}
	}
}
