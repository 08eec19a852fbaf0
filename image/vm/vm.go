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
	"cmp"
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
	// ReachNamespace lets the guest reach the namespace's loopback as
	// 10.0.2.2, over UDP too (qemu's restrict=off; guestfwd is TCP only,
	// and gokrazy's NTP client speaks UDP). Only with Isolate: the
	// namespace holds nothing but what the test listens on (ListenUDP),
	// and no route out.
	ReachNamespace bool
	// Pi boots the image on an emulated Raspberry Pi 3 B
	// (qemu-system-aarch64 -M raspi3b) instead of an amd64 PC.
	Pi *Pi
	// MAC is the Pi's USB network adapter's address (PiMAC if empty).
	MAC string
}

// Pi is what qemu's raspi3b needs from the image's boot partition: qemu
// does not run the Pi firmware, so it loads the kernel and device tree
// itself and passes cmdline.txt.
type Pi struct {
	Kernel, DTB string // files copied from the boot partition
	Cmdline     string // cmdline.txt
}

// piCmdline adapts the image's cmdline.txt to qemu's raspi3b, changing
// nothing the boot depends on. The PL011 console is ttyAMA1 on that board's
// device tree. qemu 7.2's emulated BCM2835 watchdog resets the board as
// soon as gokrazy opens it, so its driver is kept from loading; gokrazy
// then runs without a watchdog, as it does on the amd64 VM.
func piCmdline(cmdline string) string {
	var keep []string
	for _, f := range strings.Fields(cmdline) {
		if strings.HasPrefix(f, "console=") {
			continue
		}
		keep = append(keep, f)
	}
	// earlycon prints from the kernel's first instruction on the same
	// PL011 (at 0x3f201000 on this board), so a boot that stops early
	// still leaves a trace on the console.
	//
	// qemu has no VideoCore either: the VCHIQ driver fails to set up its
	// mailbox channel ("failed to set channelbase") and its slot thread
	// then sometimes reads an unmapped slot and panics the kernel at ~4.7 s
	// (a CI run of TestPiWithoutBatteryClock); nothing of ours uses it.
	return strings.Join(append(keep, "earlycon=pl011,0x3f201000", "console=ttyAMA1,115200",
		"initcall_blacklist=bcm2835_wdt_driver_init,vchiq_driver_init"), " ")
}

// PiMAC is the USB network adapter's usual address: globally administered
// (b8:27:eb is the Raspberry Pi Foundation's OUI), so the kernel names it
// eth0. With a locally administered one, like qemu's default 52:54:00:…,
// the kernel names the device usb0 (cmd/wired serves it).
const PiMAC = "b8:27:eb:00:00:01"

// VM is a running qemu.
type VM struct {
	opts Options
	cmd  *exec.Cmd
	done chan error
	ns   *netns
	// Restarts counts power-ons that were repeated because qemu stalled
	// before the guest printed anything (see Start).
	Restarts int
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
	qemu := "qemu-system-x86_64"
	args := []string{
		"-m", fmt.Sprint(opts.Memory), "-smp", "2",
		"-display", "none", "-monitor", "none",
		"-serial", "file:" + opts.Serial,
		"-drive", "file=" + opts.Image + ",format=raw,if=virtio",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=net0",
	}
	if p := opts.Pi; p != nil {
		// The board has its 1 GiB and four cores built in; the SD card
		// must be a power of two in size (image.StorageBytes is 2 GiB).
		qemu = "qemu-system-aarch64"
		args = []string{
			"-M", "raspi3b",
			"-kernel", p.Kernel, "-dtb", p.DTB, "-append", piCmdline(p.Cmdline),
			"-display", "none", "-monitor", "none",
			"-serial", "file:" + opts.Serial,
			"-drive", "file=" + opts.Image + ",format=raw,if=sd",
			"-netdev", netdev, "-device", "usb-net,netdev=net0,mac=" + cmp.Or(opts.MAC, PiMAC),
		}
	}
	args = append(args, opts.Extra...)
	v := &VM{opts: opts, ns: ns}
	launch := func() error {
		cmd := exec.Command(qemu, args...)
		if ns != nil {
			cmd = ns.command(qemu, args...)
		}
		cmd.Stdout = opts.Log
		cmd.Stderr = opts.Log
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("vm: start qemu: %w", err)
		}
		v.cmd, v.done = cmd, make(chan error, 1)
		go func() { v.done <- cmd.Wait() }()
		return nil
	}
	if err := launch(); err != nil {
		if ns != nil {
			ns.close()
		}
		return nil, err
	}
	// A CI run once saw the Pi's second boot print nothing at all for
	// five minutes while qemu kept running: the emulator stalled before the
	// guest kernel's console came up (no line of ours runs that early; the
	// first boot of the same image in the same test was fine). One restart
	// of such a stall is the emulator's problem, not a product failure;
	// the restart is counted so that tests can say it happened.
	if !v.firstOutput(firstOutputTimeout) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "vm: qemu wrote nothing to the serial console in %v; restarting it once\n", firstOutputTimeout)
		}
		v.kill()
		v.Restarts++
		if err := launch(); err != nil {
			if ns != nil {
				ns.close()
			}
			return nil, err
		}
	}
	return v, nil
}

// firstOutputTimeout bounds how long a guest may stay silent on its serial
// console after power-on. Both boards print within seconds even on a loaded
// 2-core machine (the Pi's kernel console comes up at ~2 s guest time).
const firstOutputTimeout = 2 * time.Minute

// firstOutput waits until the guest has written to its serial console, qemu
// has exited (WaitXMPP reports that) or d has passed; false only for the last.
func (v *VM) firstOutput(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if fi, err := os.Stat(v.opts.Serial); err == nil && fi.Size() > 0 {
			return true
		}
		if exited, _ := v.Exited(); exited {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// kill stops qemu and waits for it, keeping the namespace.
func (v *VM) kill() {
	if v.cmd.Process != nil {
		v.cmd.Process.Kill()
	}
	<-v.done
	v.done <- errors.New("stopped")
}

// Stop kills qemu and waits for it.
func (v *VM) Stop() {
	v.kill()
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
	if opts.ReachNamespace {
		if ns == nil {
			return "", errors.New("vm: ReachNamespace needs Isolate: without a namespace the guest would reach the host")
		}
		netdev = "user,id=net0,restrict=off"
	}
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

// ListenUDP opens a UDP socket on port of the namespace's loopback, which
// the guest reaches as 10.0.2.2 with ReachNamespace.
func (v *VM) ListenUDP(port int) (net.PacketConn, error) {
	if v.ns == nil {
		return nil, errors.New("vm: ListenUDP needs Isolate")
	}
	var c net.PacketConn
	err := v.ns.inside(func() (err error) {
		c, err = net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		return err
	})
	return c, err
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

// SerialTail is the last n bytes of the serial console's log (all of it
// when shorter): what a failed test prints.
func (v *VM) SerialTail(n int) string {
	log := v.SerialLog()
	if len(log) > n {
		log = log[len(log)-n:]
	}
	return log
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
