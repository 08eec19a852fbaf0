package idle

import (
	"net"
	"testing"
	"time"
)

// setup starts a poller and a loopback listener (closed at the end).
func setup(t *testing.T) (*Poller, net.Listener) {
	t.Helper()
	p, err := NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return p, ln
}

// pair returns a connected loopback TCP pair: the server side wrapped.
func pair(t *testing.T, ln net.Listener) (*Conn, net.Conn) {
	t.Helper()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	w := Wrap(sv)
	if w == nil {
		t.Fatal("Wrap: no descriptor")
	}
	return w, cl
}

func wokeWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func TestParkWakesOnData(t *testing.T) {
	p, ln := setup(t)
	c, peer := pair(t, ln)
	defer c.Close()
	defer peer.Close()
	c.SetNonblocking(true)
	if _, err := c.Read(make([]byte, 8)); err != ErrWouldBlock {
		t.Fatalf("read with nothing sent: %v, want ErrWouldBlock", err)
	}
	woke := make(chan struct{})
	if err := p.Park(c, func() { close(woke) }); err != nil {
		t.Fatal(err)
	}
	if wokeWithin(woke, 50*time.Millisecond) {
		t.Fatal("woke with nothing to read")
	}
	peer.Write([]byte("x"))
	if !wokeWithin(woke, 5*time.Second) {
		t.Fatal("not woken by data")
	}
	// Parked again (ONESHOT re-armed) with the byte still unread: wakes at once.
	again := make(chan struct{})
	if err := p.Park(c, func() { close(again) }); err != nil {
		t.Fatal(err)
	}
	if !wokeWithin(again, 5*time.Second) {
		t.Fatal("not woken by data already waiting")
	}
}

// A late Forget by a closed connection must not unregister the connection
// that now has the same descriptor number. (c2s did exactly this once: its
// teardown forgot a connection a second time after the session had closed
// it, and under load a new connection had taken the number and parked.)
func TestLateForgetSparesReusedDescriptor(t *testing.T) {
	p, ln := setup(t)
	old, oldPeer := pair(t, ln)
	if err := p.Park(old, func() {}); err != nil {
		t.Fatal(err)
	}
	p.Forget(old)
	fd := old.FD()
	old.Close()
	oldPeer.Close()

	// The kernel hands out the lowest free number: the next accepted
	// connection gets old's.
	var c *Conn
	var peer net.Conn
	for i := 0; i < 20; i++ {
		c, peer = pair(t, ln)
		if c.FD() == fd {
			break
		}
		defer c.Close()
		defer peer.Close()
	}
	if c.FD() != fd {
		t.Skipf("descriptor %d was not reused", fd)
	}
	defer c.Close()
	defer peer.Close()
	woke := make(chan struct{})
	if err := p.Park(c, func() { close(woke) }); err != nil {
		t.Fatal(err)
	}
	if w := p.Forget(old); w != nil {
		t.Fatal("late Forget of the old connection returned the new one's wake")
	}
	peer.Write([]byte("x"))
	if !wokeWithin(woke, 5*time.Second) {
		t.Fatal("new connection lost its wake-up after a late Forget of the old one")
	}
}

func TestForgetReturnsWake(t *testing.T) {
	p, ln := setup(t)
	c, peer := pair(t, ln)
	defer c.Close()
	defer peer.Close()
	called := false
	if err := p.Park(c, func() { called = true }); err != nil {
		t.Fatal(err)
	}
	w := p.Forget(c)
	if w == nil {
		t.Fatal("Forget of a parked connection returned no wake")
	}
	w()
	if !called {
		t.Fatal("wrong wake returned")
	}
	if p.Forget(c) != nil {
		t.Fatal("second Forget returned a wake")
	}
}
