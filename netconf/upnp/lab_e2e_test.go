//go:build e2e

package upnp

// The test network, built fresh for each test from namespaces named
// hnc-up<N>-…:
//
//	lan (our client, 192.168.77.2) ── router (miniupnpd; 192.168.77.1 | WAN) ── wan (a peer)
//
// The WAN side uses 11.250.42.0/24 by default: Debian 12's miniupnpd 2.3.1
// refuses to forward when its WAN address is private or reserved, and that
// includes the documentation ranges (203.0.113.0/24, 198.51.100.0/24). The
// address exists only on the veth pair between the router and wan
// namespaces, which have no other link, so no packet can leave them.
//
// Our client runs as a child process inside the lan namespace (the test
// binary again, see TestMain), because a Go program's sockets follow the
// namespace of whichever thread opens them. It writes the status report
// to a file the test reads.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hearthchat/hearth/netconf/internal/netns"
	"github.com/hearthchat/hearth/netconf/internal/routerlab"
	"github.com/hearthchat/hearth/netconf/status"
)

const (
	nsPrefix  = "hnc-up"
	lanAddr   = routerlab.LANAddr
	routerLAN = routerlab.RouterLAN
	wanRouter = "11.250.42.1"
	wanPeer   = "11.250.42.2"
	helperEnv = "HNC_UPNP_HELPER"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
	case "client":
		os.Exit(helperClient())
	case "deleteall":
		os.Exit(helperDeleteAll())
	case "dial":
		os.Exit(helperDial())
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
	if netns.Available() == nil {
		// What a crashed earlier run left: namespaces and the daemons in them.
		if err := netns.Sweep(nsPrefix); err != nil {
			fmt.Fprintln(os.Stderr, "sweep:", err)
		}
	}
	os.Exit(m.Run())
}

// helperOpts travel to the child in the environment.
type helperOpts struct {
	Ports      []Port
	Lease      time.Duration
	RetryMin   time.Duration
	RetryMax   time.Duration
	StatusFile string
	LANAddr    string // Options.LANAddr; empty: learned from the router's answer
	Listen     []int  // TCP ports to answer on ("hearth <port>\n")
}

func (o helperOpts) toClient(rep status.Reporter) Options {
	lan, _ := netip.ParseAddr(o.LANAddr)
	return Options{Ports: o.Ports, Lease: o.Lease, Reporter: rep, LANAddr: lan,
		SearchWait: time.Second, Timeout: 2 * time.Second,
		RetryMin: o.RetryMin, RetryMax: o.RetryMax}
}

func readHelperOpts() (helperOpts, error) {
	var o helperOpts
	err := json.Unmarshal([]byte(os.Getenv("HNC_UPNP_OPTS")), &o)
	return o, err
}

func helperClient() int {
	o, err := readHelperOpts()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for _, p := range o.Listen {
		ln, err := net.Listen("tcp4", ":"+strconv.Itoa(p))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "hearth %d\n", p)
				c.Close()
			}
		}()
	}
	var b status.Board
	var wmu sync.Mutex
	write := func(r status.Report) {
		wmu.Lock()
		defer wmu.Unlock()
		j, _ := json.Marshal(r)
		tmp := o.StatusFile + ".tmp"
		if os.WriteFile(tmp, j, 0o644) == nil {
			os.Rename(tmp, o.StatusFile)
		}
	}
	b.OnChange(write)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	opts := o.toClient(&b)
	opts.OnExternal = func(a []netip.Addr) { fmt.Fprintln(os.Stderr, "helper: external", a) }
	err = New(opts).Run(ctx)
	write(b.Report())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func helperDeleteAll() int {
	o, err := readHelperOpts()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := New(o.toClient(nil)).DeleteAll(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func helperDial() int {
	c, err := net.DialTimeout("tcp4", os.Getenv("HNC_UPNP_DIAL"), 3*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	var buf [64]byte
	n, _ := c.Read(buf[:])
	os.Stdout.Write(buf[:n])
	return 0
}

// lab is the routerlab network plus this package's helpers.
type lab struct {
	*routerlab.Lab
	t *testing.T
}

func newLab(t *testing.T, wanAddr string) *lab {
	t.Helper()
	return &lab{Lab: routerlab.New(t, nsPrefix, wanAddr), t: t}
}

// dial connects from the wan namespace to addr and returns what it read.
func (l *lab) dial(addr string) (string, error) {
	exe, _ := os.Executable()
	cmd := l.WAN.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=dial", "HNC_UPNP_DIAL="+addr)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), nil
}

// client is our Client running in the lan namespace.
type client struct {
	t      *testing.T
	cmd    *exec.Cmd
	done   chan struct{}
	status string
	log    *routerlab.SyncBuffer
	exit   error
}

func (l *lab) startClient(o helperOpts) *client {
	l.t.Helper()
	o.StatusFile = filepath.Join(l.Dir, fmt.Sprintf("status-%d.json", time.Now().UnixNano()))
	j, _ := json.Marshal(o)
	exe, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	c := &client{t: l.t, status: o.StatusFile, log: &routerlab.SyncBuffer{}, done: make(chan struct{})}
	c.cmd = l.LAN.Command(exe)
	c.cmd.Env = append(os.Environ(), helperEnv+"=client", "HNC_UPNP_OPTS="+string(j))
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { c.exit = c.cmd.Wait(); close(c.done) }()
	l.t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.done
		if l.t.Failed() {
			l.t.Logf("client log:\n%s", c.log)
		}
	})
	return c
}

func (c *client) report() status.Report {
	var r status.Report
	b, err := os.ReadFile(c.status)
	if err == nil {
		json.Unmarshal(b, &r)
	}
	return r
}

// wait polls the report until ok holds.
func (c *client) wait(what string, timeout time.Duration, ok func(status.Report) bool) status.Report {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := c.report()
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			j, _ := r.JSON()
			c.t.Fatalf("timed out after %v waiting for %s; report:\n%s", timeout, what, j)
		}
		select {
		case <-c.done:
			j, _ := c.report().JSON()
			c.t.Fatalf("client exited (%v) while waiting for %s; report:\n%s", c.exit, what, j)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the client as netconf's shutdown would (SIGTERM → ctx ends).
func (c *client) stop(timeout time.Duration) {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if c.exit != nil {
			c.t.Fatalf("client exited with %v", c.exit)
		}
	case <-time.After(timeout):
		c.t.Fatalf("client did not stop within %v", timeout)
	}
}

func level(r status.Report, id string) status.Level {
	c, _ := r.Get(id)
	return c.Level
}

func mustExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}
