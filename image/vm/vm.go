// Package vm boots Hearth's amd64 image under qemu for tests and `make vm`.
//
// The guest gets user-mode networking with restrict=on: it can reach nothing
// outside, and the only way in is the forwarded ports, which listen on the
// host's loopback only. Tests also set Options.Isolate, which puts qemu in a
// network namespace of its own (see netns.go).
package vm

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Options says how to start a VM.
type Options struct {
	Image  string      // raw disk image (written to by the guest)
	Serial string      // file receiving the serial console
	Ports  map[int]int // guest TCP port -> host port on 127.0.0.1
	// GuestFwd connects guest connections to "ip:port" (inside qemu's
	// user network) to a port on the host's loopback.
	GuestFwd map[string]int
	Memory   int       // MiB; 1024 if zero
	Log      io.Writer // qemu's own stderr
	Extra    []string  // more qemu arguments
	// Isolate runs qemu in a network namespace of its own that holds only
	// a loopback (needs root); Ports and GuestFwd are then joined to the
	// host's loopback by proxies in this process. Tests set it.
	Isolate bool
}

// VM is a running qemu.
type VM struct {
	opts Options
	cmd  *exec.Cmd
	done chan error
	ns   *netns
}

// Start boots the image. Software emulation (TCG): this workplace's /dev/kvm
// cannot run these guests, and TCG behaves the same everywhere.
func Start(opts Options) (*VM, error) {
	if opts.Memory == 0 {
		opts.Memory = 1024
	}
	var ns *netns
	if opts.Isolate {
		var err error
		if ns, err = newNetns(); err != nil {
			return nil, err
		}
	}
	netdev, err := netdevArg(opts, ns)
	if err != nil {
		if ns != nil {
			ns.close()
		}
		return nil, err
	}
	args := []string{
		"-m", fmt.Sprint(opts.Memory), "-smp", "2",
		"-display", "none", "-monitor", "none",
		"-serial", "file:" + opts.Serial,
		"-drive", "file=" + opts.Image + ",format=raw,if=virtio",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=net0",
	}
	args = append(args, opts.Extra...)
	cmd := exec.Command("qemu-system-x86_64", args...)
	if ns != nil {
		cmd = ns.command("qemu-system-x86_64", args...)
	}
	cmd.Stdout = opts.Log
	cmd.Stderr = opts.Log
	if err := cmd.Start(); err != nil {
		if ns != nil {
			ns.close()
		}
		return nil, fmt.Errorf("vm: start qemu: %w", err)
	}
	v := &VM{opts: opts, cmd: cmd, done: make(chan error, 1), ns: ns}
	go func() { v.done <- cmd.Wait() }()
	return v, nil
}

// Stop kills qemu and waits for it.
func (v *VM) Stop() {
	if v.cmd.Process != nil {
		v.cmd.Process.Kill()
	}
	<-v.done
	v.done <- errors.New("stopped")
	if v.ns != nil {
		v.ns.close()
		v.ns = nil
	}
}

// netdevArg builds qemu's user-mode network: restrict=on (the guest reaches
// nothing outside qemu), forwarded ports on loopback only, and guestfwd
// connections to loopback services. With a namespace, the loopback is the
// namespace's and proxies join it to the host's.
func netdevArg(opts Options, ns *netns) (string, error) {
	netdev := "user,id=net0,restrict=on"
	var nsPorts []int
	if ns != nil {
		var err error
		if nsPorts, err = ns.freePorts(len(opts.Ports)); err != nil {
			return "", err
		}
	}
	i := 0
	for guest, host := range opts.Ports {
		listen := host
		if ns != nil {
			listen = nsPorts[i]
			i++
			if err := ns.forwardIn(host, listen); err != nil {
				return "", err
			}
		}
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", listen, guest)
	}
	for guest, host := range opts.GuestFwd {
		to := host
		if ns != nil {
			var err error
			if to, err = ns.forwardOut(host); err != nil {
				return "", err
			}
		}
		netdev += fmt.Sprintf(",guestfwd=tcp:%s-tcp:127.0.0.1:%d", guest, to)
	}
	return netdev, nil
}

// Exited reports whether qemu has exited (and why).
func (v *VM) Exited() (bool, error) {
	select {
	case err := <-v.done:
		v.done <- err
		return true, err
	default:
		return false, nil
	}
}

// SerialLog returns what the guest wrote to its serial console so far.
func (v *VM) SerialLog() string {
	b, _ := os.ReadFile(v.opts.Serial)
	return string(b)
}

// WaitXMPP waits until something in the guest answers an XMPP stream header
// on host port hostPort. A bare TCP connect proves nothing: qemu accepts
// forwarded connections itself and only then tries the guest.
func (v *VM) WaitXMPP(ctx context.Context, hostPort int, domain string) error {
	addr := fmt.Sprintf("127.0.0.1:%d", hostPort)
	var last error
	for {
		if exited, err := v.Exited(); exited {
			return fmt.Errorf("vm: qemu exited while waiting for XMPP: %v", err)
		}
		if last = probeXMPP(addr, domain); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vm: no XMPP on %s: %v (last: %v)", addr, ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func probeXMPP(addr, domain string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "<?xml version='1.0'?><stream:stream to='%s' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>", domain)
	r := bufio.NewReader(c)
	buf := make([]byte, 512)
	n, err := io.ReadAtLeast(r, buf, 20)
	if err != nil {
		return fmt.Errorf("read stream header: %w", err)
	}
	if !bytes.Contains(buf[:n], []byte("stream")) {
		return fmt.Errorf("unexpected answer %q", buf[:n])
	}
	return nil
}

// FreePort asks the kernel for a free loopback port. There is a window in
// which another process could take it; qemu then fails loudly.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitSerial waits until the serial log contains s.
func (v *VM) WaitSerial(ctx context.Context, s string) error {
	for {
		if strings.Contains(v.SerialLog(), s) {
			return nil
		}
		if exited, err := v.Exited(); exited {
			return fmt.Errorf("vm: qemu exited while waiting for %q: %v", s, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vm: %q not on the serial console: %w", s, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}
