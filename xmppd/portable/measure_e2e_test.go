//go:build e2e

package portable

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/store"
)

// TestCLI100k measures `xmppd export` and `xmppd import` of an account
// with 100,000 archived messages (time and peak RSS from /usr/bin/time),
// and checks the imported account exports the same document.
//
//	go test -tags e2e -run TestCLI100k -v -count=1 ./xmppd/portable/
func TestCLI100k(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/time"); err != nil {
		t.Skip("no /usr/bin/time")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "xmppd")
	if b := os.Getenv("XMPPD_BIN"); b != "" {
		bin = b // a binary built already (the tree may be mid-change)
	} else if out, err := exec.Command("go", "build", "-o", bin, "github.com/hearthchat/hearth/cmd/xmppd").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	os.MkdirAll(a, 0o700)
	st, err := store.Open(filepath.Join(a, "xmppd.db"))
	if err != nil {
		t.Fatal(err)
	}
	fill(t, st, "juliet", 100_000)
	st.Close()
	doc := filepath.Join(tmp, "juliet.xml")
	run := func(state string, stdout *os.File, args ...string) string {
		t.Helper()
		cmd := exec.Command("/usr/bin/time", append([]string{"-f", "TIME %e s, peak RSS %M KiB", bin, "-state", state, "-domain", domain}, args...)...)
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = stdout, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		i := strings.LastIndex(errb.String(), "TIME ")
		return strings.TrimSpace(errb.String()[i:])
	}
	f, _ := os.Create(doc)
	t.Logf("export: %s", run(a, f, "export", "juliet"))
	f.Close()
	fi, _ := os.Stat(doc)
	t.Logf("document: %d bytes", fi.Size())
	t.Logf("import: %s", run(b, os.Stdout, "import", doc))
	f2, _ := os.Create(doc + ".2")
	run(b, f2, "export", "juliet")
	f2.Close()
	x, _ := os.ReadFile(doc)
	y, _ := os.ReadFile(doc + ".2")
	if !bytes.Equal(x, y) {
		t.Fatal("the imported account exports another document")
	}
}
