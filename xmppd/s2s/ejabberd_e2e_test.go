//go:build e2e

package s2s_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/s2s"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// startEjabberd runs Debian's ejabberd as ejabberd.test on loopback (the
// Erlang VM directly, as cmd/hearth-bench does: ejabberdctl wants the
// ejabberd user and Erlang distribution), with a certificate from the
// certCA, trusting the test CA for peers, and registers alice.
//
// Its DNS: ejabberd resolves s2s names with Erlang's own resolver
// (inet_res); ERL_INETRC points that VM alone at the test zone's server
// ({lookup, [dns]}: not the system's resolver, not /etc/hosts), so
// nothing on the machine is touched. The order matters: resolv_conf ""
// (do not read /etc/resolv.conf) clears the name servers set before it.
func startEjabberd(t *testing.T, w *world, certCA *s2s.TestCA) (c2s int) {
	t.Helper()
	if _, err := exec.LookPath("erl"); err != nil {
		t.Fatalf("erl is needed (make test-deps): %v", err)
	}
	lib := "/usr/lib/x86_64-linux-gnu"
	if m, _ := filepath.Glob(filepath.Join(lib, "ejabberd-*")); len(m) == 0 {
		t.Fatalf("Debian's ejabberd is needed (make test-deps): nothing in %s/ejabberd-*", lib)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certCA.Issue(t, cert, key, "ejabberd.test")
	cb, _ := os.ReadFile(cert)
	kb, _ := os.ReadFile(key)
	bundle := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(bundle, append(cb, kb...), 0o600); err != nil {
		t.Fatal(err)
	}
	c2s, s2sPort := freePort(t), freePort(t)
	dnsHost, dnsPort, _ := net.SplitHostPort(w.dns.Addr)
	inetrc := filepath.Join(dir, "inetrc")
	if err := os.WriteFile(inetrc, []byte(fmt.Sprintf("{resolv_conf, \"\"}.\n{hosts_file, \"\"}.\n{nameserver, {%s}, %s}.\n{lookup, [dns]}.\n",
		strings.ReplaceAll(dnsHost, ".", ","), dnsPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "ejabberd.yml")
	conf := fmt.Sprintf(`# written by xmppd/s2s's ejabberd_e2e_test.go
loglevel: info
log_rotate_count: 0
hosts: ["ejabberd.test"]
certfiles: [%[1]q]
ca_file: %[2]q
acme: {auto: false}
s2s_use_starttls: required
listen:
  - {port: %[3]d, ip: "127.0.0.1", module: ejabberd_c2s, starttls_required: true}
  - {port: %[4]d, ip: "127.0.0.1", module: ejabberd_s2s_in}
auth_method: internal
acl:
  everyone: {user_regexp: ""}
access_rules:
  register: {allow: all}
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_offline: {}
  mod_s2s_dialback: {}
  mod_register: {ip_access: all, access: register}
registration_timeout: infinity
`, bundle, w.ca.PEMFile, c2s, s2sPort)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(dir, "spool")
	os.MkdirAll(spool, 0o700)
	cmd := exec.Command("erl", "-noinput", "-mnesia", "dir", `"`+spool+`"`, "-s", "ejabberd")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "EJABBERD_CONFIG_PATH="+cfg, "EJABBERD_LOG_PATH="+filepath.Join(dir, "ejabberd.log"),
		"ERL_LIBS="+lib, "ERL_CRASH_DUMP="+filepath.Join(dir, "erl_crash.dump"), "ERL_INETRC="+inetrc)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "ejabberd.log"))
			t.Logf("ejabberd output:\n%s\nejabberd log (tail):\n%s", out.String(), tailLines(string(b), 150))
		}
	})
	w.dns.SRV(t, "xmpp-server", "ejabberd.test", 0, 0, s2sPort, "xmpp.ejabberd.test")
	w.dns.Host(t, "xmpp.ejabberd.test", "127.0.0.1")
	// Ready when it registers alice (in-band, XEP-0077: without Erlang
	// distribution there is no ejabberdctl).
	deadline := time.Now().Add(40 * time.Second)
	for {
		err := register(t, fmt.Sprintf("127.0.0.1:%d", c2s), "ejabberd.test", "alice", "alice-pw")
		if err == nil {
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("ejabberd: registering alice: %v\n%s", err, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return c2s
}

// register makes an account by in-band registration over STARTTLS.
func register(t *testing.T, addr, domain, user, pw string) (err error) {
	raw, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	header := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" + domain + "' version='1.0'>"
	next := func(p *stream.Parser) (*stream.Element, error) {
		for {
			ev, err := p.Next()
			if err != nil {
				return nil, err
			}
			if ev.Kind == stream.Close {
				return nil, fmt.Errorf("stream closed")
			}
			if ev.Kind == stream.Stanza {
				return ev.El, nil
			}
		}
	}
	p := stream.NewParser(raw, stream.PostAuthLimits)
	fmt.Fprint(raw, header)
	if _, err := next(p); err != nil { // features
		return fmt.Errorf("features: %w", err)
	}
	fmt.Fprint(raw, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
	if el, err := next(p); err != nil || el.Local != "proceed" {
		return fmt.Errorf("starttls: %v %v", el, err)
	}
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	p = stream.NewParser(c, stream.PostAuthLimits)
	fmt.Fprint(c, header)
	if _, err := next(p); err != nil {
		return fmt.Errorf("features after TLS: %w", err)
	}
	fmt.Fprintf(c, "<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>%s</username><password>%s</password></query></iq>", user, pw)
	el, err := next(p)
	if err != nil {
		return err
	}
	if el.Get("type") != "result" {
		return fmt.Errorf("register: %s", el)
	}
	return nil
}

// hearthWithEjabberd starts hearth.test beside ejabberd, published so
// that ejabberd can reach it.
func hearthWithEjabberd(t *testing.T, w *world, tune func(*s2s.Config)) *box {
	t.Helper()
	hearth := w.start(t, "hearth.test", nil, tune)
	// ejabberd 23.01 (p1_xmpp 1.6.1) asks inet_res for SRV records but
	// resolves their targets with net:getaddrinfo, the system's resolver,
	// which ERL_INETRC does not reach: a target name would leave the
	// machine (and not be found: "DNS lookup failed: enoname"). An
	// address as the target is not looked up by getaddrinfo at all.
	port := hearth.d.S2SAddr().(*net.TCPAddr).Port
	for _, d := range []string{"hearth.test", "groups.hearth.test"} {
		w.dns.Replace(t, s2s.SRVRecord("xmpp-server", d, 0, 0, port, "127.0.0.1"))
	}
	return hearth
}

// Our xmppd and Debian's ejabberd: messages both ways and a presence
// subscription both ways (testdata/federate.py), each server's
// certificate from the test CA, which both trust: SASL EXTERNAL both ways.
func TestEjabberd(t *testing.T) {
	w := newWorld(t)
	w.dns.Log = t.Logf
	ec2s := startEjabberd(t, w, w.ca)
	hearth := hearthWithEjabberd(t, w, nil)
	runPy(t, 60*time.Second, "federate.py", "--ca", caBundle(t, w.ca),
		"--client", fmt.Sprintf("alice@ejabberd.test:alice-pw:127.0.0.1:%d:SCRAM-SHA-1", ec2s),
		"--client", hearth.clientSpec("bob"))
	for _, want := range []string{`msg="s2s: connected out" domain=ejabberd.test from=hearth.test auth=EXTERNAL`, `msg="s2s: peer authenticated" domain=ejabberd.test auth=EXTERNAL`} {
		if !hearth.log.has(want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

// Both directions by dialback: ejabberd's certificate comes from a CA we
// do not trust and we offer none.
func TestEjabberdDialback(t *testing.T) {
	w := newWorld(t)
	other := s2s.NewCA(t, t.TempDir())
	ec2s := startEjabberd(t, w, other)
	hearth := hearthWithEjabberd(t, w, func(c *s2s.Config) { c.NoClientCert = true })
	runPy(t, 60*time.Second, "federate.py", "--ca", caBundle(t, w.ca, other),
		"--client", fmt.Sprintf("alice@ejabberd.test:alice-pw:127.0.0.1:%d:SCRAM-SHA-1", ec2s),
		"--client", hearth.clientSpec("bob"))
	for _, want := range []string{`msg="s2s: connected out" domain=ejabberd.test from=hearth.test auth=dialback`, `msg="s2s: peer authenticated" domain=ejabberd.test auth=dialback`} {
		if !hearth.log.has(want) {
			t.Errorf("log lacks %s", want)
		}
	}
}
