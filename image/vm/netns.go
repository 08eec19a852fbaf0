package vm

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// netns is a network namespace holding nothing but its own loopback: qemu
// runs inside it, so even a hole in qemu's user-mode network could reach
// nothing outside. The ports the guest offers and the feed it may fetch are
// joined to the host's loopback by small proxies in this process, which can
// open sockets on either side.
type netns struct {
	name string
	mu   sync.Mutex
	lns  []net.Listener
}

func newNetns() (*netns, error) {
	b := make([]byte, 4)
	rand.Read(b)
	ns := &netns{name: "hearth-vm-" + hex.EncodeToString(b)}
	if out, err := exec.Command("ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("vm: ip netns add %s: %v: %s", ns.name, err, out)
	}
	if out, err := exec.Command("ip", "-n", ns.name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		ns.close()
		return nil, fmt.Errorf("vm: %s: lo up: %v: %s", ns.name, err, out)
	}
	return ns, nil
}

// command runs name inside the namespace.
func (ns *netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
}

// inside runs f on an OS thread switched into the namespace; sockets f
// opens stay in the namespace after the thread switches back.
func (ns *netns) inside(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + ns.name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("vm: setns %s: %w", ns.name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine, so
			// no other goroutine ever runs inside the namespace by accident.
			errc <- fmt.Errorf("vm: setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// freePorts returns n distinct ports free on the namespace's loopback (it
// is new and empty, so nothing else takes them before qemu does).
func (ns *netns) freePorts(n int) ([]int, error) {
	var ports []int
	err := ns.inside(func() error {
		for range n {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			defer l.Close()
			ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		}
		return nil
	})
	return ports, err
}

// forwardIn listens on the host's 127.0.0.1:hostPort and connects each
// client to 127.0.0.1:nsPort inside the namespace.
func (ns *netns) forwardIn(hostPort, nsPort int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort))
	if err != nil {
		return fmt.Errorf("vm: forward host port %d: %w", hostPort, err)
	}
	ns.keep(l)
	go ns.serve(l, func() (net.Conn, error) {
		var c net.Conn
		err := ns.inside(func() (err error) {
			c, err = net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", nsPort))
			return err
		})
		return c, err
	})
	return nil
}

// forwardOut listens on the namespace's loopback and connects each client
// to 127.0.0.1:hostPort on the host. It returns the namespace port.
func (ns *netns) forwardOut(hostPort int) (int, error) {
	var l net.Listener
	err := ns.inside(func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("vm: forward to host port %d: %w", hostPort, err)
	}
	ns.keep(l)
	go ns.serve(l, func() (net.Conn, error) {
		return net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort))
	})
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (ns *netns) keep(l net.Listener) {
	ns.mu.Lock()
	ns.lns = append(ns.lns, l)
	ns.mu.Unlock()
}

func (ns *netns) serve(l net.Listener, dial func() (net.Conn, error)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := dial()
			if err != nil {
				return
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(u, c); done <- struct{}{} }()
			go func() { io.Copy(c, u); done <- struct{}{} }()
			<-done
		}()
	}
}

// close stops the proxies and deletes the namespace.
func (ns *netns) close() {
	ns.mu.Lock()
	for _, l := range ns.lns {
		l.Close()
	}
	ns.lns = nil
	ns.mu.Unlock()
	exec.Command("ip", "netns", "del", ns.name).Run()
}
