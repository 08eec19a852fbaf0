package session

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// holdAll is a filter that holds every stanza until released.
type holdAll struct {
	mu      sync.Mutex
	held    []*stream.Element
	resumed int
}

func (h *holdAll) Offer(el *stream.Element, send func(*stream.Element) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = append(h.held, el)
	return true
}

func (h *holdAll) Resumed(send func(*stream.Element) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resumed++
	for _, el := range h.held {
		send(el)
	}
	h.held = nil
}

// TestFilterHoldsBeforeCounting: a stanza a filter holds is not counted by
// stream management (acknowledging it is acknowledging too much) nor
// written; SendDirect bypasses the filter; Attach hands the filter the
// resumed session, after the resent stanzas.
func TestFilterHoldsBeforeCounting(t *testing.T) {
	a, b := net.Pipe()
	r := readAll(b)
	s := newSession(t, a)
	s.EnableAcks("id1")
	h := &holdAll{}
	s.SetFilter(h)
	if !s.Send(msg(0)) || !s.Send(msg(1)) {
		t.Fatal("a held stanza was refused")
	}
	if err := s.Ack(1); err != ErrHandledTooHigh {
		t.Fatalf("ack of a held stanza: %v, want %v", err, ErrHandledTooHigh)
	}
	if !s.SendDirect(msg(2)) {
		t.Fatal("SendDirect refused")
	}
	waitFor(t, "m2 written", func() bool { return strings.Contains(r.String(), "id='m2'") })
	if strings.Contains(r.String(), "id='m0'") {
		t.Fatal("a held stanza was written")
	}
	old := s.Gen()
	if !s.Detach(old) {
		t.Fatal("detach")
	}
	c1, c2 := net.Pipe()
	defer c2.Close()
	r2 := readAll(c2)
	if _, err := s.Attach(c1, 0, []byte("<resumed/>")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "held stanzas after the resent one", func() bool { return strings.Contains(r2.String(), "id='m1'") })
	out := r2.String()
	if h.resumed != 1 || !(strings.Index(out, "id='m2'") < strings.Index(out, "id='m0'") && strings.Index(out, "id='m0'") < strings.Index(out, "id='m1'")) {
		t.Fatalf("resumed %d times; after resumption:\n%s", h.resumed, out)
	}
	if err := s.Ack(3); err != nil {
		t.Fatalf("the released stanzas are counted once sent: %v", err)
	}
	s.SetFilter(nil)
	if !s.Send(msg(3)) {
		t.Fatal("send without a filter")
	}
	waitFor(t, "m3 written", func() bool { return strings.Contains(r2.String(), "id='m3'") })
}
