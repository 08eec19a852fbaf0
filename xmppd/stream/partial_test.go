package stream

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/idle"
)

// chunkReader hands out its chunks one per Read; an empty chunk is a read
// that would block (what a parked connection's non-blocking read returns),
// and the end is a would-block too, so the stream can always go on.
type chunkReader struct{ chunks []string }

func (r *chunkReader) Read(b []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, idle.ErrWouldBlock
	}
	c := r.chunks[0]
	if c == "" {
		r.chunks = r.chunks[1:]
		return 0, idle.ErrWouldBlock
	}
	n := copy(b, c)
	if n == len(c) {
		r.chunks = r.chunks[1:]
	} else {
		r.chunks[0] = c[n:]
	}
	return n, nil
}

// nextOrBlock runs Next once: the event, or false when the read would block.
func nextOrBlock(t *testing.T, p *Parser) (Event, bool) {
	t.Helper()
	ev, err := p.Next()
	if err == idle.ErrWouldBlock {
		return Event{}, false
	}
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev, true
}

func TestPartialAcrossWouldBlock(t *testing.T) {
	big := strings.Repeat("x", 3*initialBuf) // grows the buffer past its pooled size
	r := &chunkReader{}
	p := NewParser(r, PostAuthLimits)
	if p.Partial() || p.PartialBytes() != 0 {
		t.Fatal("fresh parser reports a partial element")
	}

	// A half-sent stream header is partial.
	r.chunks = []string{hdr[:60]}
	if _, ok := nextOrBlock(t, p); ok {
		t.Fatal("event from half a header")
	}
	// The XML declaration is complete and consumed; the rest is held.
	if want := 60 - len("<?xml version='1.0'?>"); !p.Partial() || p.PartialBytes() != want {
		t.Fatalf("half header: Partial=%v PartialBytes=%d, want true, %d", p.Partial(), p.PartialBytes(), want)
	}
	r.chunks = []string{hdr[60:]}
	if ev, ok := nextOrBlock(t, p); !ok || ev.Kind != Open {
		t.Fatalf("header: %+v", ev)
	}
	if p.Partial() {
		t.Fatal("Partial after a complete header")
	}

	steps := []struct {
		send    string
		partial bool
		bytes   int // want PartialBytes, -1: do not check
	}{
		{"\n \n", false, 0},                       // keepalive white space is not a stanza
		{"<mess", true, 5},                        // start tag incomplete
		{"age to='a@b'", true, 17},                // still in the start tag
		{"><body>" + big, true, -1},               // in the stanza, text incomplete
		{"</body></message>", false, 0},           // complete: returned
		{"<presence/>\n", false, 0},               // complete, trailing white space
		{"<iq type='get' id='1'><ping", true, 27}, // in a child's start tag
		{" xmlns='urn:xmpp:ping'/></iq>", false, 0},
		{"</stream:str", true, 12}, // closing tag incomplete
	}
	for i, s := range steps {
		r.chunks = []string{s.send, ""}
		for {
			if _, ok := nextOrBlock(t, p); !ok {
				break
			}
		}
		if p.Partial() != s.partial || (s.bytes >= 0 && p.PartialBytes() != s.bytes) {
			t.Fatalf("step %d (%q): Partial=%v PartialBytes=%d, want %v, %d", i, s.send, p.Partial(), p.PartialBytes(), s.partial, s.bytes)
		}
		// Parking releases the buffer when it can; that must not lose
		// the partial state.
		p.Release()
		if p.Partial() != s.partial {
			t.Fatalf("step %d: Partial changed by Release", i)
		}
	}
}

// A large stanza's bytes are counted while it is open, also after its
// text was consumed into the tree.
func TestPartialBytesCountsConsumedBytes(t *testing.T) {
	body := strings.Repeat("y", 10000)
	r := &chunkReader{chunks: []string{hdr, "<message><body>" + body + "</body>", ""}}
	p := NewParser(r, PostAuthLimits)
	for {
		if _, ok := nextOrBlock(t, p); !ok {
			break
		}
	}
	want := len("<message><body>" + body + "</body>")
	if !p.Partial() || p.PartialBytes() != want {
		t.Fatalf("Partial=%v PartialBytes=%d, want true, %d", p.Partial(), p.PartialBytes(), want)
	}
}

// Bytes pipelined behind a returned stanza are partial until parsed: the
// parser cannot know whether they are complete.
func TestPartialWithPipelinedStanzas(t *testing.T) {
	p := NewParser(strings.NewReader(hdr+"<presence/><presence/>"), PostAuthLimits)
	p.Next()
	if ev, err := p.Next(); err != nil || ev.Kind != Stanza {
		t.Fatalf("first stanza: %v %v", ev, err)
	}
	if !p.Partial() || p.PartialBytes() != len("<presence/>") {
		t.Fatalf("buffered stanza: Partial=%v PartialBytes=%d", p.Partial(), p.PartialBytes())
	}
	p.Next()
	if _, err := p.Next(); !errors.Is(err, io.EOF) || p.Partial() {
		t.Fatalf("after the last stanza: err=%v Partial=%v", err, p.Partial())
	}
}
