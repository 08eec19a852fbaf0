package session

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/stream"
)

func msg(i int) *stream.Element {
	return stream.New(stream.NSClient, "message", "type", "chat", "id", fmt.Sprintf("m%d", i),
		"to", "alice@example.test/a", "from", "bob@example.test/b").
		Add(stream.New(stream.NSClient, "body").AddText(strings.Repeat("x", 1000)))
}

func newSession(t *testing.T, c net.Conn) *Session {
	t.Helper()
	return New(c, jid.MustParse("alice@example.test/a"), stream.NSClient)
}

// reader collects what a client reads from its end of a pipe.
type reader struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func readAll(c net.Conn) *reader {
	r := &reader{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			r.mu.Lock()
			r.buf.Write(b[:n])
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *reader) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// waitFor polls cond (a condition, not a sleep) for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type ids struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *ids) add(els []*stream.Element) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]int{}
	}
	for _, el := range els {
		s.m[el.Get("id")]++
	}
}

func (s *ids) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// A session without stream management whose reader stalls overflows its
// queue and closes; every message it accepted but never wrote comes back
// through the reroute function, parsed, with its namespace (issue 9, item
// 2: kickLocked used to truncate them away).
func TestOverflowReroutesUnwrittenMessages(t *testing.T) {
	srvEnd, client := net.Pipe() // nobody reads: the writer blocks
	defer client.Close()
	s := newSession(t, srvEnd)
	var got ids
	var calls atomic.Int32
	s.SetReroute(func(els []*stream.Element) {
		for _, el := range els {
			if el.Space != stream.NSClient || el.ChildText(stream.NSClient, "body") == "" {
				t.Errorf("rerouted element lost its namespace or body: %s", el)
			}
		}
		got.add(els)
		calls.Add(1)
	})
	accepted := 0
	for i := 0; i < 5000; i++ {
		if !s.Send(msg(i)) {
			break
		}
		accepted++
	}
	if accepted == 5000 {
		t.Fatal("the queue never overflowed")
	}
	if !s.Closing() {
		t.Fatal("an overflowing session must close")
	}
	// The one that overflowed is refused (the caller re-routes it); all
	// before it come back here: those queued, and the batch the writer was
	// stuck writing when the link was closed.
	waitFor(t, "every accepted message rerouted", func() bool { return got.len() == accepted })
	for i := 0; i < accepted; i++ {
		if n := got.m[fmt.Sprintf("m%d", i)]; n != 1 {
			t.Fatalf("m%d rerouted %d times", i, n)
		}
	}
	if s.Send(msg(9999)) {
		t.Fatal("a closed session accepted a message")
	}
}

// blockConn is a connection whose Write waits for release and then
// succeeds even if it was closed meanwhile (a write that completed as the
// close happened).
type blockConn struct {
	net.Conn
	release chan struct{}
	wrote   atomic.Int64
}

func (c *blockConn) Write(b []byte) (int, error) {
	<-c.release
	c.wrote.Add(int64(len(b)))
	return len(b), nil
}
func (c *blockConn) Close() error                     { return nil }
func (c *blockConn) SetWriteDeadline(time.Time) error { return nil }

// issue 9, item 5: after an overflow the queue's buffer (over a megabyte)
// went back to the pool when the writer found it empty.
func TestOverflowDoesNotPoolLargeBuffers(t *testing.T) {
	for range 3 {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		c := &blockConn{Conn: a, release: make(chan struct{})}
		s := newSession(t, c)
		s.SetReroute(func([]*stream.Element) {})
		for i := 0; s.Send(msg(i)); i++ {
		}
		close(c.release) // the stuck write completes; the writer loops once more
		waitFor(t, "the writer to stop", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return !s.writing
		})
	}
	for range 64 {
		b := bufPool.Get().(*[]byte)
		if cap(*b) > maxPooled {
			t.Fatalf("pool holds a %d-byte buffer", cap(*b))
		}
	}
}

// failConn fails every write, as a socket whose peer vanished does once
// the write timeout passed.
type failConn struct{ net.Conn }

func (failConn) Write([]byte) (int, error) { return 0, errors.New("write: i/o timeout") }

// A write error is a link that died, not a close on purpose: a resumable
// session may hibernate and give the client everything on resumption
// (issue 9, item 3).
func TestWriteErrorLeavesSessionResumable(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	s := newSession(t, failConn{a})
	if !s.EnableAcks("id1") {
		t.Fatal("enable")
	}
	for i := 0; i < 3; i++ {
		if !s.Send(msg(i)) {
			t.Fatalf("m%d refused", i)
		}
	}
	waitFor(t, "the write error to close the link", s.Closing)
	<-s.Done()
	if s.ClosedOnPurpose() {
		t.Fatal("a write error counted as a close on purpose")
	}
	gen := s.Gen()
	if !s.Detach(gen) {
		t.Fatal("a session whose link died could not hibernate")
	}
	// Sent while hibernating: kept for the client.
	if !s.Send(msg(3)) {
		t.Fatal("hibernating session refused a message")
	}
	c1, c2 := net.Pipe()
	defer c2.Close()
	r := readAll(c2)
	if _, err := s.Attach(c1, 0, []byte("<resumed/>")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resent stanzas", func() bool { return strings.Contains(r.String(), "id='m3'") })
	out := r.String()
	if !strings.HasPrefix(out, "<resumed/>") {
		t.Fatalf("resumption starts with %.40q", out)
	}
	for i := 0; i < 4; i++ {
		if strings.Count(out, fmt.Sprintf("id='m%d'", i)) != 1 {
			t.Fatalf("m%d not resent exactly once:\n%s", i, out)
		}
	}
}

// A stream error or a replacement is a close on purpose: no hibernation.
func TestCloseOnPurposeDoesNotHibernate(t *testing.T) {
	a, b := net.Pipe()
	r := readAll(b)
	s := newSession(t, a)
	s.EnableAcks("id1")
	s.CloseWithError("conflict", "replaced")
	<-r.done
	if !s.ClosedOnPurpose() {
		t.Fatal("CloseWithError not recorded as on purpose")
	}
	if s.Detach(s.Gen()) {
		t.Fatal("a session closed on purpose hibernated")
	}
}

// Detach of an older generation (the client already resumed on a new
// connection) must not take the new connection away.
func TestDetachAttachGenerations(t *testing.T) {
	a, b := net.Pipe()
	readAll(b)
	s := newSession(t, a)
	s.EnableAcks("id1")
	for i := 0; i < 3; i++ {
		s.Send(msg(i))
	}
	old := s.Gen()
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	c1, c2 := net.Pipe()
	defer c2.Close()
	r := readAll(c2)
	gen, err := s.Attach(c1, 2, []byte("<resumed/>"))
	if err != nil || gen == old {
		t.Fatalf("attach: gen %d, %v", gen, err)
	}
	if s.Detach(old) {
		t.Fatal("the old connection's end detached the resumed session")
	}
	if s.TryEndAt(old) {
		t.Fatal("the old connection's end ended the resumed session")
	}
	waitFor(t, "m2 resent", func() bool { return strings.Contains(r.String(), "id='m2'") })
	if out := r.String(); strings.Contains(out, "id='m0'") || strings.Contains(out, "id='m1'") {
		t.Fatalf("acknowledged stanzas resent:\n%s", out)
	}
	if _, err := s.Attach(c1, 100, nil); err == nil {
		t.Fatal("attach with h beyond what was sent succeeded")
	}
}

// Exactly one of many concurrent enders wins (issue 9, item 4).
func TestTryEndOnce(t *testing.T) {
	for range 200 {
		a, b := net.Pipe()
		s := newSession(t, a)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ok bool
				switch i % 3 {
				case 0:
					ok = s.TryEnd()
				case 1:
					ok = s.TryEndAt(1)
				default:
					ok = s.TryEnd()
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d enders won", wins.Load())
		}
		a.Close()
		b.Close()
	}
}

// Send racing a close: every message the session accepted is either read
// by the client or handed back for re-routing; none vanishes.
func TestSendRacingClose(t *testing.T) {
	for round := range 20 {
		a, b := net.Pipe()
		r := readAll(b)
		s := newSession(t, a)
		var back ids
		s.SetReroute(back.add)
		var accepted sync.Map
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					m := msg(g*1000 + i)
					if s.Send(m) {
						accepted.Store(m.Get("id"), true)
					}
				}
			}()
		}
		if round%2 == 0 {
			s.Kill()
		} else {
			s.CloseWithError("", "")
		}
		wg.Wait()
		<-s.Done()
		<-r.done
		// A write cut by the close fails and hands its batch back: wait
		// for the writer to finish before counting.
		waitFor(t, "the writer to stop", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return !s.writing
		})
		out := r.String()
		accepted.Range(func(k, _ any) bool {
			id := k.(string)
			back.mu.Lock()
			n := back.m[id]
			back.mu.Unlock()
			if n == 0 && !strings.Contains(out, "id='"+id+"'") {
				t.Errorf("round %d: %s accepted, never written, not rerouted", round, id)
			}
			return true
		})
		b.Close()
	}
}

// Past the high-water mark a session with stream management refuses chat
// messages instead of closing (issue 9, burst with stream management);
// other stanzas still go through; once the client acknowledges, it is
// told it caught up and takes messages again.
func TestBacklogPushesBack(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	r := &recConn{Conn: a}
	s := newSession(t, r)
	s.EnableAcks("")
	var drained atomic.Int32
	s.SetDrained(func() { drained.Add(1) })
	// Small messages: the count of unacknowledged stanzas, not queued
	// bytes (however slowly the writer runs), reaches its mark first.
	small := func(i int) *stream.Element {
		return stream.New(stream.NSClient, "message", "type", "chat", "id", fmt.Sprintf("m%d", i)).
			Add(stream.New(stream.NSClient, "body").AddText("hi"))
	}
	n := 0
	for ; n < MaxUnacked; n++ {
		if !s.Send(small(n)) {
			break
		}
	}
	if n != highUnacked {
		t.Fatalf("accepted %d messages before refusing, want %d", n, highUnacked)
	}
	if s.Closing() {
		t.Fatal("a backlogged session was closed")
	}
	if !s.Backlogged() {
		t.Fatal("not marked backlogged")
	}
	if !s.Send(stream.New(stream.NSClient, "presence", "from", "bob@example.test/b")) {
		t.Fatal("presence refused by a backlogged session")
	}
	if !s.Send(stream.New(stream.NSClient, "message", "type", "error", "id", "e")) {
		t.Fatal("an error message refused by a backlogged session")
	}
	// The session asked for an acknowledgement when it started refusing.
	waitFor(t, "an ack request", func() bool { return strings.Count(r.String(), "<r xmlns='urn:xmpp:sm:3'/>") > n/requestEvery })
	if err := s.Ack(uint32(n + 2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drained callback", func() bool { return drained.Load() == 1 })
	if !s.Send(small(n + 1)) {
		t.Fatal("a session that caught up still refuses")
	}
	if s.Backlogged() {
		t.Fatal("still backlogged")
	}
}

// The hard limit still applies to a flood of stanzas that cannot be
// stored: the link is treated as dead, not closed on purpose.
func TestMaxUnackedClosesAsDead(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	readAll(b)
	s := newSession(t, a)
	s.EnableAcks("id")
	p := stream.New(stream.NSClient, "presence")
	i := 0
	for ; i <= MaxUnacked; i++ {
		if !s.Send(p) {
			break
		}
	}
	if i != MaxUnacked {
		t.Fatalf("refused after %d, want %d", i, MaxUnacked)
	}
	waitFor(t, "close", s.Closing)
	if s.ClosedOnPurpose() || !s.Detach(s.Gen()) {
		t.Fatal("a session over MaxUnacked could not hibernate")
	}
}

// recConn takes every write at once (a fast reader), so only
// unacknowledged stanzas, not queued bytes, can build up.
type recConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *recConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(b)
}

func (c *recConn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

var _ = io.EOF

// A hibernating session holds chat messages up to highBytes, not
// highUnacked of any size: 500 messages of 256 KiB to a phone that is
// away would be 128 MB on a Pi.
func TestHibernatingSessionBoundedInBytes(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	readAll(b)
	s := newSession(t, a)
	s.EnableAcks("id")
	s.Kill()
	if !s.Detach(s.Gen()) {
		t.Fatal("detach")
	}
	big := strings.Repeat("x", 100<<10)
	n := 0
	for ; n < highUnacked; n++ {
		m := stream.New(stream.NSClient, "message", "type", "chat", "id", fmt.Sprint(n)).
			Add(stream.New(stream.NSClient, "body").AddText(big))
		if !s.Send(m) {
			break
		}
	}
	if held := n * (100 << 10); n == highUnacked || held > highBytes+(200<<10) {
		t.Fatalf("a hibernating session took %d messages of 100 KiB", n)
	}
	if !s.Backlogged() {
		t.Fatal("not backlogged")
	}
}

// A client that resumes having handled everything ends the backlogged
// state at once (no <r/> is asked for then, so no later answer would).
func TestAttachAcknowledgingAllEndsBacklog(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	readAll(b)
	s := newSession(t, a)
	s.EnableAcks("id")
	drained := make(chan struct{}, 1)
	s.SetDrained(func() { drained <- struct{}{} })
	s.Kill()
	s.Detach(s.Gen())
	n := 0
	for s.Send(msg(n)) {
		n++
	}
	if !s.Backlogged() {
		t.Fatal("not backlogged")
	}
	c1, c2 := net.Pipe()
	defer c2.Close()
	readAll(c2)
	if _, err := s.Attach(c1, uint32(n), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("resumed with everything acknowledged, still backlogged")
	}
	if !s.Send(msg(n)) {
		t.Fatal("refused after catching up")
	}
}

// A slow but steady reader (a phone on a poor mobile link) gets a queue
// that takes far longer than WriteTimeout to write: the timeout bounds a
// write that makes no progress, not the whole queue. With one deadline
// over the whole write, every resumption with a large backlog on such a
// link timed out and the phone could never catch up.
func TestSlowSteadyReaderIsNotCutOff(t *testing.T) {
	old := SetWriteTimeout(400 * time.Millisecond)
	defer SetWriteTimeout(old)
	srvEnd, client := net.Pipe()
	defer client.Close()
	s := newSession(t, srvEnd)
	const n = 800 // ~900 KB, under MaxQueue
	for i := 0; i < n; i++ {
		if !s.Send(msg(i)) {
			t.Fatalf("message %d refused", i)
		}
	}
	// 32 KiB every 40 ms: ~1.1 s for the queue, 80 ms per writeChunk.
	var got bytes.Buffer
	buf := make([]byte, 32<<10)
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(got.String(), "id='m") < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d messages in 30 s", strings.Count(got.String(), "id='m"), n)
		}
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := client.Read(buf)
		if err != nil {
			t.Fatalf("after %d messages: %v (closing: %v)", strings.Count(got.String(), "id='m"), err, s.Closing())
		}
		got.Write(buf[:m])
		time.Sleep(40 * time.Millisecond)
	}
	if s.Closing() {
		t.Fatal("the session closed on a reader that kept reading")
	}
}
