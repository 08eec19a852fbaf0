package ws

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hearthchat/hearth/xmppd/idle"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// clientFrame is a masked client frame.
func clientFrame(fin bool, op byte, payload []byte, key [4]byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

var key = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// dribble hands out its bytes chunk at a time with idle.ErrWouldBlock
// between every two reads: what a parked connection's reader sees.
type dribble struct {
	b     []byte
	chunk int
	block bool
}

func (d *dribble) Read(p []byte) (int, error) {
	if d.block {
		d.block = false
		return 0, idle.ErrWouldBlock
	}
	if len(d.b) == 0 {
		return 0, io.EOF
	}
	d.block = true
	n := min(len(p), d.chunk, len(d.b))
	copy(p, d.b[:n])
	d.b = d.b[n:]
	return n, nil
}

// pipeConn records what the server writes.
type pipeConn struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *pipeConn) Read([]byte) (int, error) { return 0, io.EOF }
func (c *pipeConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(b)
}
func (c *pipeConn) Close() error                     { return nil }
func (c *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

func testConn(in []byte, chunk int) (*conn, *pipeConn) {
	h := New(Config{MaxMessage: 1 << 16, PingInterval: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	pc := &pipeConn{}
	c := h.newConn(pc)
	c.src = &dribble{b: in, chunk: chunk}
	c.keepalive()
	return c, pc
}

// readAll reads what c2s would, retrying after every ErrWouldBlock (each
// one is where a parked reader would have returned to the poller).
func readAll(c *conn) (string, error) {
	var out []byte
	p := make([]byte, 7)
	for i := 0; i < 1_000_000; i++ {
		n, err := c.Read(p)
		out = append(out, p[:n]...)
		if err == idle.ErrWouldBlock {
			if c.rb != nil {
				return string(out), errors.New("a read buffer held across ErrWouldBlock")
			}
			continue
		}
		if err != nil {
			return string(out), err
		}
	}
	return string(out), errors.New("no end")
}

func TestFramesFragmentedWithControlFrames(t *testing.T) {
	msg := "<message xmlns='jabber:client'><body>grüße 🌱</body></message>"
	cut := strings.Index(msg, "🌱") + 2 // inside the four-byte sequence
	var in []byte
	in = append(in, clientFrame(true, opText, []byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.test' version='1.0'/>"), key)...)
	in = append(in, clientFrame(false, opText, []byte(msg[:10]), key)...)
	in = append(in, clientFrame(true, opPing, []byte("hi"), key)...)
	in = append(in, clientFrame(false, opCont, nil, key)...)
	in = append(in, clientFrame(false, opCont, []byte(msg[10:cut]), key)...)
	in = append(in, clientFrame(true, opPong, nil, key)...)
	in = append(in, clientFrame(true, opCont, []byte(msg[cut:]), key)...)
	msg2 := "<presence xmlns='jabber:client'><status>" + strings.Repeat("x", 300) + "</status></presence>"
	in = append(in, clientFrame(true, opText, []byte(msg2), key)...)
	in = append(in, clientFrame(true, opText, []byte("  <close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/> "), key)...)
	in = append(in, clientFrame(true, opClose, []byte{0x03, 0xe8, 'b', 'y', 'e'}, key)...)
	for _, chunk := range []int{1, 2, 3, 5, 64, 4096} {
		c, pc := testConn(in, chunk)
		got, err := readAll(c)
		if !errors.Is(err, errPeerClosed) {
			t.Fatalf("chunk %d: end %v", chunk, err)
		}
		want := "<stream:stream xmlns='jabber:client' xmlns:stream='" + stream.NSStream + "' to='example.test' version='1.0'>" + msg + msg2 + "</stream:stream>"
		if got != want {
			t.Fatalf("chunk %d:\n got %q\nwant %q", chunk, got, want)
		}
		// A pong for the ping, then the close echoed with its code.
		wantOut := string(appendFrame(nil, opPong, []byte("hi"))) + string(appendFrame(nil, opClose, []byte{0x03, 0xe8}))
		if pc.out.String() != wantOut {
			t.Fatalf("chunk %d: server wrote %q, want %q", chunk, pc.out.String(), wantOut)
		}
	}
}

func TestFramesRefused(t *testing.T) {
	text := func(s string) []byte { return clientFrame(true, opText, []byte(s), key) }
	unmasked := clientFrame(true, opText, []byte("<a/>"), key)
	unmasked = append([]byte{unmasked[0], unmasked[1] &^ 0x80}, []byte("<a/>")...)
	for _, c := range []struct {
		name string
		in   []byte
		code uint16
	}{
		{"unmasked", unmasked, closeProtocol},
		{"reserved bit", func() []byte { b := text("<a/>"); b[0] |= 0x40; return b }(), closeProtocol},
		{"unknown opcode", clientFrame(true, 0x3, nil, key), closeProtocol},
		{"continuation first", clientFrame(true, opCont, []byte("<a/>"), key), closeProtocol},
		{"text inside a message", append(clientFrame(false, opText, []byte("<a"), key), text("/>")...), closeProtocol},
		{"fragmented ping", clientFrame(false, opPing, nil, key), closeProtocol},
		{"long ping", clientFrame(true, opPing, make([]byte, 126), key), closeProtocol},
		{"close of one byte", clientFrame(true, opClose, []byte{3}, key), closeProtocol},
		{"close code 1005", clientFrame(true, opClose, []byte{0x03, 0xed}, key), closeProtocol},
		{"close reason not UTF-8", clientFrame(true, opClose, []byte{0x03, 0xe8, 0xff}, key), closeBadData},
		{"invalid UTF-8", text("<a>\xc0\xaf</a>"), closeBadData},
		{"surrogate", text("<a>\xed\xa0\x80</a>"), closeBadData},
		{"UTF-8 cut at the end", text("<a>\xe2\x82"), closeBadData},
		{"over the limit", append(clientFrame(false, opText, []byte("<a>"), key), clientFrame(true, opCont, make([]byte, 1<<16+4096), key)...), closeTooBig},
		{"64-bit length with its top bit", []byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, closeProtocol},
	} {
		for _, chunk := range []int{1, 4096} {
			cn, pc := testConn(c.in, chunk)
			_, err := readAll(cn)
			var pe *protoError
			if !errors.As(err, &pe) || pe.code != c.code {
				t.Errorf("%s (chunk %d): %v, want close %d", c.name, chunk, err, c.code)
				continue
			}
			if b := pc.out.Bytes(); len(b) < 4 || b[0] != 0x80|opClose || binary.BigEndian.Uint16(b[2:]) != c.code {
				t.Errorf("%s: server wrote %q, want a close frame %d", c.name, b, c.code)
			}
			// Nothing is written after the close frame.
			if n, err := cn.Write([]byte("<presence/>")); err == nil || n != 0 {
				t.Errorf("%s: write after close: %d %v", c.name, n, err)
			}
		}
	}
	// Binary: RFC 7395's stream error (c2s sends it), not a close code.
	cn, _ := testConn(clientFrame(true, opBin, []byte("<a/>"), key), 4096)
	var se *stream.Error
	if _, err := readAll(cn); !errors.As(err, &se) || se.Condition != "unsupported-encoding" {
		t.Fatalf("binary message: %v", err)
	}
}

// TestServerFrames: what the session writes goes out as unmasked final
// text frames, one message per element, all of one Write in one write.
func TestServerFrames(t *testing.T) {
	c, pc := testConn(nil, 1)
	big := "<message><body>" + strings.Repeat("z", 70000) + "</body></message>"
	if _, err := c.Write([]byte("<presence/>" + big)); err != nil {
		t.Fatal(err)
	}
	b := pc.out.Bytes()
	var msgs []string
	for len(b) > 0 {
		if b[0] != 0x80|opText || b[1]&0x80 != 0 {
			t.Fatalf("frame header % x", b[:2])
		}
		n, h := int(b[1]), 2
		switch n {
		case 126:
			n, h = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, h = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		msgs = append(msgs, string(b[h:h+n]))
		b = b[h+n:]
	}
	if len(msgs) != 2 || msgs[0] != "<presence xmlns='jabber:client'/>" || !strings.HasPrefix(msgs[1], "<message xmlns='jabber:client'><body>zzz") || len(msgs[1]) != len(big)+len(" xmlns='jabber:client'") {
		t.Fatalf("messages %.80q", msgs)
	}
}

func TestUTF8StateMatchesStdlib(t *testing.T) {
	for _, s := range []string{"", "abc", "é", "€", "🌱", "\xc0\x80", "\xed\x9f\xbf", "\xed\xa0\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xff", "\x80"} {
		var u utf8State
		ok := u.feed([]byte(s)) && u.need == 0
		if ok != utf8.ValidString(s) {
			t.Errorf("%q: ours %v, stdlib %v", s, ok, utf8.ValidString(s))
		}
	}
}

// FuzzFrameReader: any bytes, in any pieces, never panic, never yield more
// than the limit, and never keep a read buffer across ErrWouldBlock; a
// message made of the input, fragmented at the input's own choice with
// pings between, reads back whole (or is refused as not UTF-8).
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte("<message><body>hi</body></message>"), uint8(3), uint8(1))
	f.Add([]byte{0x81, 0x85, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'}, uint8(1), uint8(7))
	f.Add([]byte("\xf0\x9f\x8c\xb1"), uint8(2), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, cut, chunk uint8) {
		// Raw input: anything goes, nothing breaks.
		c, _ := testConn(data, int(chunk)%16+1)
		c.fr.limit = 1 << 12
		out, _ := readAll(c)
		if len(out) > 1<<12+200 {
			t.Fatalf("read %d bytes past a limit of %d", len(out), 1<<12)
		}
		// The input as one fragmented message of a single element.
		body := "<a>" + string(data) + "</a>"
		step := int(cut)%8 + 1
		var in []byte
		for i := 0; i < len(body); i += step {
			end := min(i+step, len(body))
			op := byte(opCont)
			if i == 0 {
				op = opText
			}
			in = append(in, clientFrame(end == len(body), op, []byte(body[i:end]), key)...)
			if i%3 == 0 {
				in = append(in, clientFrame(true, opPing, []byte{byte(i)}, key)...)
			}
		}
		c, _ = testConn(in, int(chunk)%16+1)
		var got []byte
		p := make([]byte, 5)
		var err error
		for i := 0; i < 1_000_000; i++ {
			n, eom, e := c.fr.payload(c, c, p)
			c.release()
			got, err = append(got, p[:n]...), e
			if eom || (e != nil && e != idle.ErrWouldBlock) {
				break
			}
		}
		var pe *protoError
		switch {
		case utf8.ValidString(body):
			if err != nil || string(got) != body {
				t.Fatalf("got %q (%v), want %q", got, err, body)
			}
		case !errors.As(err, &pe) || pe.code != closeBadData:
			t.Fatalf("invalid UTF-8 %q: %v", body, err)
		}
	})
}
