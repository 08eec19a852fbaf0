package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// server is one XMPP server under test, run from its own temp dir.
type server struct {
	name string
	dir  string
	port int
	cmd  *exec.Cmd
	// preAccounts creates accounts before start (xmppd's offline CLI); nil
	// means accounts are made with in-band registration after start.
	preAccounts func(prefix string, n int, password string) error
	argv        []string
	env         []string
	logPath     string
	// wsURL is the server's XMPP-over-WebSocket endpoint ("" for none).
	wsURL string
}

type tmplData struct {
	Dir, Domain string
	Port        int
	HTTPPort    int // for XMPP over WebSocket
}

// freePort asks the kernel for an unused loopback port; other engineers
// run servers on this machine, so fixed ports collide.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func render(src, dst string, d tmplData) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	t, err := template.New(filepath.Base(src)).Delims("{{", "}}").Parse(string(b))
	if err != nil {
		return fmt.Errorf("parse %s: %w", src, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, d); err != nil {
		return fmt.Errorf("render %s: %w", src, err)
	}
	return os.WriteFile(dst, out.Bytes(), 0o600)
}

func pinned(cpu string, argv ...string) []string {
	if cpu == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpu}, argv...)
}

// newServer prepares the server's directory, configuration and command
// line. cert and key are PEM files shared by all servers so that every
// one does the same TLS work.
func newServer(name string, o *options, root string, certPEM, keyPEM []byte) (*server, error) {
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{name: name, dir: dir, port: port, logPath: filepath.Join(dir, "server.log")}
	d := tmplData{Dir: dir, Domain: o.domain, Port: port, HTTPPort: httpPort}
	write := func(p string, b []byte) error { return os.WriteFile(filepath.Join(dir, p), b, 0o600) }
	switch name {
	case "hearth":
		state := filepath.Join(dir, "state")
		if err := os.MkdirAll(filepath.Join(state, "tls"), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(state, "tls", "cert.pem"), certPEM, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(state, "tls", "key.pem"), keyPEM, 0o600); err != nil {
			return nil, err
		}
		s.preAccounts = func(prefix string, n int, password string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, o.xmppd, "-state", state, "useradd-bulk",
				prefix, fmt.Sprint(n), password).CombinedOutput()
			if err != nil {
				return fmt.Errorf("xmppd useradd-bulk: %w: %s", err, out)
			}
			return nil
		}
		// The direct-TLS listener gets its own free port so it cannot
		// collide with another engineer's server on 5223.
		tlsPort, err := freePort()
		if err != nil {
			return nil, err
		}
		s.argv = pinned(o.serverCPU, o.xmppd, "-state", state, "-domain", o.domain,
			"-c2s", fmt.Sprintf("127.0.0.1:%d", port),
			"-c2s-tls", fmt.Sprintf("127.0.0.1:%d", tlsPort), "-no-shaping",
			"-web", fmt.Sprintf("127.0.0.1:%d", httpPort), "-web-tls", "none")
		s.wsURL = fmt.Sprintf("ws://127.0.0.1:%d/xmpp-websocket", httpPort)
	case "prosody":
		if err := write("cert.pem", certPEM); err != nil {
			return nil, err
		}
		if err := write("key.pem", keyPEM); err != nil {
			return nil, err
		}
		os.MkdirAll(filepath.Join(dir, "data"), 0o700)
		cfg := filepath.Join(dir, "prosody.cfg.lua")
		if err := render(filepath.Join(o.benchDir, "prosody.cfg.lua"), cfg, d); err != nil {
			return nil, err
		}
		s.argv = pinned(o.serverCPU, "prosody", "--config", cfg, "-F")
		s.wsURL = fmt.Sprintf("ws://127.0.0.1:%d/xmpp-websocket", httpPort)
	case "ejabberd":
		if err := write("bundle.pem", append(append([]byte{}, certPEM...), keyPEM...)); err != nil {
			return nil, err
		}
		spool := filepath.Join(dir, "spool")
		os.MkdirAll(spool, 0o700)
		cfg := filepath.Join(dir, "ejabberd.yml")
		if err := render(filepath.Join(o.benchDir, "ejabberd.yml"), cfg, d); err != nil {
			return nil, err
		}
		// Run the Erlang VM directly instead of ejabberdctl: ejabberdctl
		// switches to the ejabberd user when started as root and wants
		// Erlang distribution (epmd, a node name). Without -sname there is
		// no distribution and no epmd, so the tree is beam.smp and its
		// erl_child_setup only.
		// +sbwt none: the VM's schedulers busy-wait for work by default;
		// with the VM pinned to one core, a spinning scheduler thread
		// holds the core the working one needs. A quick run measured
		// ejabberd's p50 at 50 msg/s at 352 ms and 44 of 200 messages
		// over a second late with spinning, 1.3 ms and none late without
		// (its CPU per message rose from 180 to 457 µs: messages held
		// up for seconds had been handled in cheap batches). Go and Lua
		// do not spin; this puts the VM on the same footing.
		s.argv = pinned(o.serverCPU, "erl", "-noinput", "+K", "true", "+P", "250000",
			"+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none",
			"-mnesia", "dir", `"`+spool+`"`, "-s", "ejabberd")
		s.env = []string{
			"HOME=" + dir,
			"EJABBERD_CONFIG_PATH=" + cfg,
			"EJABBERD_LOG_PATH=" + filepath.Join(dir, "ejabberd.log"),
			"ERL_LIBS=/usr/lib/x86_64-linux-gnu",
			"ERL_CRASH_DUMP=" + filepath.Join(dir, "erl_crash.dump"),
			"ERL_MAX_PORTS=65536",
		}
	default:
		return nil, fmt.Errorf("unknown server %q", name)
	}
	return s, nil
}

func (s *server) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

func (s *server) start() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.cmd = exec.Command(s.argv[0], s.argv[1:]...)
	s.cmd.Dir = s.dir
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Own process group, so stop can reach every child.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return s.cmd.Start()
}

// pid is the server process (taskset and erl exec into it, so it is the
// process we started).
func (s *server) pid() int { return s.cmd.Process.Pid }

// waitReady polls until the server answers a stream header with its own,
// which is what "first accepted connection" means here: accepting TCP
// alone is done by the kernel's backlog as soon as listen() returns.
func (s *server) waitReady(domain string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < limit {
		if s.cmd.ProcessState != nil {
			return 0, fmt.Errorf("%s exited", s.name)
		}
		c, err := net.DialTimeout("tcp", s.addr(), 200*time.Millisecond)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' to='%s'>", domain)
			buf := make([]byte, 4096)
			var got []byte
			for !bytes.Contains(got, []byte("features")) {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			c.Close()
			if bytes.Contains(got, []byte("stream:stream")) && bytes.Contains(got, []byte("features")) {
				return time.Since(start), nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s not ready after %v (log %s)", s.name, limit, s.logPath)
}

// stop sends SIGTERM to the process group and escalates after 10 s.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pgid := s.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}

// tailLog returns the last lines of the server's logs, for error reports.
func (s *server) tailLog() string {
	var out []string
	for _, p := range []string{s.logPath, filepath.Join(s.dir, "prosody.log"), filepath.Join(s.dir, "ejabberd.log")} {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		out = append(out, "== "+p, strings.Join(lines, "\n"))
	}
	return strings.Join(out, "\n")
}
