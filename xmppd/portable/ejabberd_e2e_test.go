//go:build e2e

package portable_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/portable"
	"github.com/hearthchat/hearth/xmppd/store"
)

// ejabberd is Debian's ejabberd in an Erlang VM of the test's own (as
// xmppd/s2s's tests and cmd/hearth-bench run it: ejabberdctl wants the
// ejabberd user and Erlang distribution). The VM runs the functions
// `ejabberdctl export_piefxis_host` and `import_piefxis` call
// (ejabberd_piefxis:export_host/2, import_file/1) when the test writes
// a command file, and writes the result beside it.
type ejabberd struct {
	t    *testing.T
	dir  string
	port string
	out  *bytes.Buffer
}

func startEjabberd(t *testing.T, dir, name, cert, key, domain string, users ...string) *ejabberd {
	t.Helper()
	if _, err := exec.LookPath("erl"); err != nil {
		t.Fatalf("erl is needed (make test-deps): %v", err)
	}
	lib := "/usr/lib/x86_64-linux-gnu"
	if m, _ := filepath.Glob(filepath.Join(lib, "ejabberd-*")); len(m) == 0 {
		t.Fatalf("Debian's ejabberd is needed (make test-deps): nothing in %s/ejabberd-*", lib)
	}
	e := &ejabberd{t: t, dir: filepath.Join(dir, name), out: new(bytes.Buffer)}
	os.MkdirAll(filepath.Join(e.dir, "spool"), 0o700)
	cb, _ := os.ReadFile(cert)
	kb, _ := os.ReadFile(key)
	bundle := filepath.Join(e.dir, "bundle.pem")
	if err := os.WriteFile(bundle, append(cb, kb...), 0o600); err != nil {
		t.Fatal(err)
	}
	e.port = loopbackPort(t)
	cfg := filepath.Join(e.dir, "ejabberd.yml")
	conf := fmt.Sprintf(`# written by xmppd/portable's ejabberd_e2e_test.go
loglevel: info
log_rotate_count: 0
hosts: [%[1]q]
certfiles: [%[2]q]
acme: {auto: false}
listen:
  - {port: %[3]s, ip: "127.0.0.1", module: ejabberd_c2s, tls: true}
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha
s2s_access: none
modules:
  mod_roster: {}
  mod_disco: {}
  mod_vcard: {}
  mod_private: {}
  mod_offline: {}
  mod_mam: {default: always}
`, domain, bundle, e.port)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var reg []string
	for _, u := range users {
		reg = append(reg, fmt.Sprintf(`ejabberd_auth:try_register(<<%q>>, <<%q>>, <<%q>>)`, u, domain, u+"-pw"))
	}
	// After start: register users, then serve command files until stopped.
	eval := fmt.Sprintf(`%s,
Dir = %q,
file:write_file(filename:join(Dir, "ready"), <<>>),
Loop = fun L() ->
  case file:read_file(filename:join(Dir, "cmd")) of
    {ok, Cmd} ->
      file:delete(filename:join(Dir, "cmd")),
      R = case string:split(binary_to_list(Cmd), " ") of
        ["export", Out] -> ejabberd_piefxis:export_host(Out, <<%q>>);
        ["import", File] -> ejabberd_piefxis:import_file(File)
      end,
      file:write_file(filename:join(Dir, "result"), io_lib:format("~p", [R])),
      L();
    _ -> timer:sleep(50), L()
  end
end,
spawn(Loop).`, strings.Join(append(reg, "ok"), ",\n"), e.dir, domain)
	cmd := exec.Command("erl", "-noinput", "-mnesia", "dir", `"`+filepath.Join(e.dir, "spool")+`"`, "-s", "ejabberd", "-eval", eval)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "HOME="+e.dir, "EJABBERD_CONFIG_PATH="+cfg, "EJABBERD_LOG_PATH="+filepath.Join(e.dir, "ejabberd.log"),
		"ERL_LIBS="+lib, "ERL_CRASH_DUMP="+filepath.Join(e.dir, "erl_crash.dump"))
	cmd.Stdout, cmd.Stderr = e.out, e.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(e.dir, "ejabberd.log"))
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("%s output:\n%s\nlog (tail):\n%s", name, e.out, b)
		}
	})
	e.wait(filepath.Join(e.dir, "ready"), exited)
	return e
}

// wait polls for path (bounded), failing if the VM exits.
func (e *ejabberd) wait(path string, exited <-chan struct{}) {
	e.t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-exited:
			e.t.Fatalf("ejabberd exited:\n%s", e.out)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("ejabberd: no %s within 40 s:\n%s", filepath.Base(path), e.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run has the VM run cmd and returns its result (an Erlang term).
func (e *ejabberd) run(cmd string) string {
	e.t.Helper()
	res := filepath.Join(e.dir, "result")
	os.Remove(res)
	if err := os.WriteFile(filepath.Join(e.dir, "cmd.tmp"), []byte(cmd), 0o600); err != nil {
		e.t.Fatal(err)
	}
	os.Rename(filepath.Join(e.dir, "cmd.tmp"), filepath.Join(e.dir, "cmd"))
	e.wait(res, nil)
	b, _ := os.ReadFile(res)
	return string(b)
}

// TestEjabberdRoundTrip moves an account from ejabberd 23.01 to Hearth
// and back through its XEP-0227 ("piefxis") export and import: slixmpp
// fills juliet's account on ejabberd → export_piefxis_host →
// portable.Import → slixmpp logs in to Hearth with the same password and
// finds roster, vCard, private XML → portable.ExportWith(Ejabberd) →
// import_piefxis into a fresh ejabberd → slixmpp logs in with the same
// password and finds them there. (ejabberd 23.01's
// piefxis carries no archive: the history check is Hearth ↔ prosody's.)
func TestEjabberdRoundTrip(t *testing.T) {
	const domain = xmpptest.Domain
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := selfSigned(cert, key, domain); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	e1 := startEjabberd(t, dir, "e1", cert, key, domain, "juliet", "romeo")
	accountArgs(t, ctx, e1.port, cert, "fill", "--no-pep")
	out := filepath.Join(dir, "piefxis")
	os.MkdirAll(out, 0o700)
	if r := e1.run("export " + out); r != "ok" {
		t.Fatalf("export_piefxis_host: %s", r)
	}
	// The main file includes a file per host (XEP-0227 §5).
	mains, _ := filepath.Glob(filepath.Join(out, "*[0-9].xml"))
	if len(mains) != 1 {
		t.Fatalf("export_piefxis_host wrote %v", mains)
	}
	f, err := os.Open(mains[0])
	if err != nil {
		t.Fatal(err)
	}
	sd := state.Dir(filepath.Join(dir, "hearth"))
	if err := sd.Ensure(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(sd.DB())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := portable.Import(st, domain, f, portable.Options{Include: func(href string) (io.ReadCloser, error) {
		return os.Open(filepath.Join(out, href))
	}})
	f.Close()
	st.Close()
	if err != nil {
		t.Fatalf("import of ejabberd's export: %v", err)
	}
	t.Logf("imported: %+v", rep)
	d := xmpptest.Start(t, func(o *xmppd.Options) { o.State = sd })
	xmpptest.Slixmpp(t, d, sd, "account.py", 40*time.Second, "check", "--no-archive", "--no-pep")

	// Hearth → import_piefxis into a fresh ejabberd.
	var doc bytes.Buffer
	if err := portable.ExportWith(d.Store, domain, []string{"juliet"}, &doc, portable.ExportOptions{Ejabberd: true}); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(dir, "juliet.xml")
	if err := os.WriteFile(back, doc.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	e2 := startEjabberd(t, dir, "e2", cert, key, domain)
	if r := e2.run("import " + back); r != "ok" {
		t.Fatalf("import_piefxis: %s", r)
	}
	// ejabberd's import_piefxis keeps roster items through mod_roster's
	// set, which drops ask='subscribe' (also from its own export): the
	// pending request is not looked for there.
	accountArgs(t, ctx, e2.port, cert, "check", "--no-archive", "--no-ask", "--no-pep")
}

func accountArgs(t *testing.T, ctx context.Context, port, ca, phase string, extra ...string) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "/usr/bin/python3", append([]string{filepath.Join("testdata", "account.py"), phase,
		"--port", port, "--domain", xmpptest.Domain, "--ca", ca}, extra...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("account.py %s: %v\n%s", phase, err, out)
	}
}
