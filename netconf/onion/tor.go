package onion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cretz/bine/control"
)

// torProcess is one running tor and our authenticated control connection
// to it.
//
// We start tor ourselves instead of through bine's tor.Start because
// bine's StartConf takes a single ExePath (the image needs a loader prefix,
// which its ProcessCreator could do), it gives tor only two seconds to write
// its control port file (too short for a cold start on a small Pi), it
// opens a TCP control port and a SOCKS port we do not need, and it sets no
// owner. The control protocol itself is bine's control package.
type torProcess struct {
	cmd  *exec.Cmd
	conn net.Conn
	ctrl *control.Conn

	owned   bool          // TAKEOWNERSHIP accepted: closing conn stops tor
	exited  chan struct{} // closed once tor has exited and been reaped
	waitErr error         // valid after exited is closed
	output  *tailBuffer
}

// startTor runs tor with networking off, connects to its control socket,
// authenticates with the cookie and makes tor's life depend on ours.
// socks, when set, is a unix socket for SOCKS5 connections to onion
// services only (Options.SocksSocket).
func startTor(ctx context.Context, argv []string, dir, socks string, log io.Writer, timeout time.Duration) (*torProcess, error) {
	dataDir := filepath.Join(dir, "data")
	if err := ensurePrivateDir(dataDir); err != nil {
		return nil, err
	}
	// An empty torrc, so a torrc on a development machine (/etc/tor/torrc,
	// which may open a SOCKS port or services of its own) is never read.
	torrc := filepath.Join(dir, "torrc")
	if err := os.WriteFile(torrc, nil, 0o600); err != nil {
		return nil, fmt.Errorf("onion: %w", err)
	}
	sock := filepath.Join(dataDir, "control.sock")
	// sockaddr_un holds 108 bytes; tor would fail with a less clear error.
	if len(sock) >= 104 {
		return nil, fmt.Errorf("onion: control socket path %s is too long for a unix socket", sock)
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("onion: remove old control socket: %w", err)
	}
	socksPort := "0"
	if socks != "" {
		if err := os.Remove(socks); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("onion: remove old SOCKS socket: %w", err)
		}
		// OnionTrafficOnly: this port is xmppd's way to onion peers, not a
		// general proxy for anything on the box (tor answers 0x02 "not
		// allowed" for other names and for IP addresses, and never
		// resolves a name). ExtendedErrors: tor's onion-specific replies
		// (descriptor not found, bad address, ...) instead of a general
		// failure. tor opens it only while its network is on.
		socksPort = "unix:" + quoteTorPath(socks) + " OnionTrafficOnly ExtendedErrors"
	}
	args := []string{
		"-f", torrc, "--defaults-torrc", torrc,
		"--DataDirectory", dataDir,
		// Only a unix control socket inside the 0700 data directory: no TCP
		// control port another local program could try, and no SOCKS port
		// but the unix one for onion peers when asked.
		"--ControlPort", "unix:" + quoteTorPath(sock),
		"--CookieAuthentication", "1",
		"--SocksPort", socksPort,
		// Always start offline; Run turns the network on once the service
		// is added (or never, in tests).
		"--DisableNetwork", "1",
		// Fewer writes to the SD card.
		"--AvoidDiskWrites", "1",
		// Until TAKEOWNERSHIP below, tor watches our PID and exits when we
		// are gone.
		"--__OwningControllerProcess", strconv.Itoa(os.Getpid()),
		"--Log", "notice stdout",
	}
	full := append(append([]string(nil), argv...), args...)
	cmd := exec.Command(full[0], full[1:]...)
	tail := &tailBuffer{max: 4096}
	var out io.Writer = tail
	if log != nil {
		out = io.MultiWriter(tail, log)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Stdin = nil
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("onion: start tor: %w", err)
	}
	t := &torProcess{cmd: cmd, exited: make(chan struct{}), output: tail}
	go func() {
		t.waitErr = cmd.Wait()
		close(t.exited)
	}()
	if err := t.connect(ctx, sock, timeout); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

func (t *torProcess) connect(ctx context.Context, sock string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			t.conn = c
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.exited:
			return fmt.Errorf("onion: tor exited while starting (%v): %s", t.waitErr, t.output.lastLine())
		case <-deadline.C:
			return fmt.Errorf("onion: tor did not open its control socket within %v", timeout)
		case <-tick.C:
		}
	}
	t.ctrl = control.NewConn(textproto.NewConn(t.conn))
	// A hung tor must not hang us: every control reply gets a deadline
	// while setting up; Run clears it afterwards.
	t.conn.SetDeadline(time.Now().Add(timeout))
	if err := t.ctrl.Authenticate(""); err != nil {
		return fmt.Errorf("onion: authenticate to tor: %w", err)
	}
	// From here on tor exits as soon as this connection closes, which the
	// kernel does for us if we are killed. Then stop the PID polling, as
	// the control spec advises (a reused PID could keep tor alive).
	if err := t.ctrl.TakeOwnership(); err != nil {
		return fmt.Errorf("onion: take ownership of tor: %w", err)
	}
	t.owned = true
	if err := t.ctrl.ResetConf(&control.KeyVal{Key: "__OwningControllerProcess"}); err != nil {
		return fmt.Errorf("onion: take ownership of tor: %w", err)
	}
	return nil
}

// pid is tor's process ID (for tests).
func (t *torProcess) pid() int { return t.cmd.Process.Pid }

// stop ends tor: closing the owning control connection makes it exit at
// once; signals follow for a tor that does not (or that we never owned).
func (t *torProcess) stop() {
	if t.conn != nil {
		t.conn.Close()
	}
	steps := []struct {
		sig  os.Signal
		wait time.Duration
	}{{nil, 5 * time.Second}, {syscall.SIGTERM, 5 * time.Second}, {os.Kill, 5 * time.Second}}
	if !t.owned {
		steps = steps[1:]
	}
	for _, s := range steps {
		if s.sig != nil {
			t.cmd.Process.Signal(s.sig)
		}
		select {
		case <-t.exited:
			return
		case <-time.After(s.wait):
		}
	}
}

// quoteTorPath quotes a socket path for tor's config syntax when needed.
func quoteTorPath(p string) string {
	if strings.ContainsAny(p, " \t\"\\") {
		return strconv.Quote(p)
	}
	return p
}

// tailBuffer keeps the last bytes tor printed, so a failure can be
// explained with tor's own last words (in Detail, not in Message).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = append(w.b[:0], w.b[len(w.b)-w.max:]...)
	}
	return len(p), nil
}

// lastLine is the last non-empty line tor printed.
func (w *tailBuffer) lastLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(w.b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
