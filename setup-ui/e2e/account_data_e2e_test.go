//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/internal/browsertest"
)

// prosodyExport makes an XEP-0227 file the way a member leaving a Prosody
// server gets one: an account registered with prosodyctl (SCRAM-SHA-1
// verifiers, prosody's internal_hashed store), a roster in prosody's own
// data file, and prosody-migrator's xep0227 output. Prosody itself need
// not run.
func prosodyExport(t *testing.T, ctx context.Context, user, domain string) string {
	t.Helper()
	for _, bin := range []string{"prosodyctl", "lua5.4", "/usr/bin/prosody-migrator"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed (make test-deps): %v", bin, err)
		}
	}
	dir := t.TempDir()
	data, pie := filepath.Join(dir, "data"), filepath.Join(dir, "pie")
	for _, d := range []string{data, pie} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "prosody.cfg.lua")
	conf := fmt.Sprintf("run_as_root = true\ndata_path = %q\nauthentication = \"internal_hashed\"\nlog = { { levels = { min = \"error\" }, to = \"console\" } }\nVirtualHost %q\n", data, domain)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "prosodyctl", "--config", cfg, "register", user, domain, "old prosody password").CombinedOutput(); err != nil {
		t.Fatalf("prosodyctl register: %v\n%s", err, out)
	}
	// Prosody's roster store: a Lua table per account in
	// data/<host with . as %2e>/roster/<user>.dat.
	rdir := filepath.Join(data, strings.ReplaceAll(domain, ".", "%2e"), "roster")
	os.MkdirAll(rdir, 0o700)
	roster := `return {
	[false] = { ["version"] = 1; ["pending"] = {}; };
	["romeo@montague.example"] = { ["subscription"] = "both"; ["name"] = "Romeo"; ["groups"] = { ["Verona"] = true; }; };
	["nurse@capulet.example"] = { ["subscription"] = "to"; ["groups"] = {}; };
};
`
	if err := os.WriteFile(filepath.Join(rdir, user+".dat"), []byte(roster), 0o600); err != nil {
		t.Fatal(err)
	}
	// prosody-migrator writes its xep0227 files in the data directory its
	// launcher names (CFG_DATADIR): a copy of the launcher names pie.
	src, err := os.ReadFile("/usr/bin/prosody-migrator")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(src), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "CFG_DATADIR=") {
			lines[i] = fmt.Sprintf("CFG_DATADIR=%q;", pie)
		}
	}
	launcher, mcfg := filepath.Join(dir, "migrator.lua"), filepath.Join(dir, "migrator.cfg.lua")
	os.WriteFile(launcher, []byte(strings.Join(lines, "\n")), 0o600)
	os.WriteFile(mcfg, []byte(fmt.Sprintf(`input { type = "internal"; path = %q; hosts = { [%q] = { "accounts", "roster" } } }
output { type = "xep0227" }
`, data, domain)), 0o600)
	if out, err := exec.CommandContext(ctx, "lua5.4", launcher, "--root", "--config", mcfg, "input", "output").CombinedOutput(); err != nil {
		t.Fatalf("prosody-migrator: %v\n%s", err, out)
	}
	file := filepath.Join(pie, user+"@"+domain+".xml")
	doc, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(doc), "romeo@montague.example") || !strings.Contains(string(doc), "scram") && !strings.Contains(string(doc), "stored") {
		t.Fatalf("prosody's file: %v\n%s", err, doc)
	}
	return file
}

// TestAccountDataInBrowser (issue 15): a new member joins through an
// invite in headless Chromium and brings the account file Prosody's
// migrator wrote on their old server: a file that is not one is refused
// in words and makes no account; the real one makes the account under the
// chosen name with the chosen password and the old contacts. Then, logged
// in, the member downloads their data from /data: the download carries
// the new address and the contacts from Prosody. axe on each page.
func TestAccountDataInBrowser(t *testing.T) {
	start := time.Now()
	nd := browsertest.NodeDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	file := prosodyExport(t, ctx, "juliet", "capulet.example")
	x := claimedBox(t)
	// Over the web server's 1 MiB body limit for pages: the join form's
	// body is the form's own to bound (mounted with HandleStream). A
	// comment pads Prosody's file; the import skips comments.
	doc, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	decl := 0 // prosody-migrator writes no XML declaration; after one if there is
	if i := strings.Index(string(doc), "?>"); i >= 0 {
		decl = i + 2
	}
	padded := string(doc[:decl]) + "\n<!-- " + strings.Repeat("padding ", 300_000) + "-->" + string(doc[decl:])
	file = filepath.Join(t.TempDir(), "juliet@capulet.example.xml")
	if err := os.WriteFile(file, []byte(padded), 0o600); err != nil {
		t.Fatal(err)
	}

	bad := filepath.Join(t.TempDir(), "notes.xml")
	os.WriteFile(bad, []byte("<notes><note>not an account</note></notes>"), 0o600)
	res := browsertest.Run(t, ctx, nd, "setup-ui/e2e/account_data.mjs", "BASE=http://"+x.web, "ADMIN=anna", "ADMIN_PASSWORD=green kettle river",
		"OUT="+browsertest.Screenshots(t), "NEW_USER=jules", "NEW_PASSWORD=jules rides at dawn", "FILE="+file, "BAD_FILE="+bad, "IMPORT_USER=romy")
	for _, k := range []string{"refusedInWords", "joined", "downloadNamed", "downloadHasContacts", "downloadNewAddress",
		"allMembers", "otherDomainRefused", "imported"} {
		if res.Checks[k] != true {
			t.Errorf("browser check %s: %v (%v)", k, res.Checks[k], res.Checks)
		}
	}
	// The new password logs in to the chat (slixmpp), the old one does
	// not: the file's SCRAM-SHA-1 verifiers were not taken.
	host, port, _ := strings.Cut(x.c2s, ":")
	// romy, imported by the admin from jules's file, has jules's
	// credentials (the file's, kept by an admin import).
	for _, c := range []struct{ user, pw, want string }{
		{"jules", "jules rides at dawn", "ok"}, {"jules", "old prosody password", "refused"}, {"romy", "jules rides at dawn", "ok"},
	} {
		out, err := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join(repoRoot(t), "setup-ui", "e2e", "login.py"),
			host, port, c.user+"@hearth.localhost", c.pw, filepath.Join(x.state, "tls", "cert.pem")).CombinedOutput()
		if lines := strings.Fields(string(out)); err != nil || len(lines) == 0 || lines[len(lines)-1] != c.want {
			t.Errorf("slixmpp login as %s with %q: %v, want %s\n%s", c.user, c.pw, err, c.want, out)
		}
	}
	t.Logf("figure: TestAccountDataInBrowser took %s", time.Since(start).Round(100*time.Millisecond))
}
