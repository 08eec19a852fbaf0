package ws

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The server side of RFC 6455's framing, our own (see the package doc for
// why not the library's): client frames in, server frames out. Reading is
// resumable at any byte: a read of the connection that would block
// (idle.ErrWouldBlock) leaves the frame state as it was, so the reader can
// park between any two bytes and pick up where it stopped.

// Opcodes (RFC 6455 §5.2).
const (
	opCont  = 0x0
	opText  = 0x1
	opBin   = 0x2
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// Close codes (RFC 6455 §7.4.1).
const (
	closeNormal    = 1000
	closeGoingAway = 1001
	closeProtocol  = 1002
	closeBadData   = 1007
	closePolicy    = 1008
	closeTooBig    = 1009
)

// maxControl is the largest control frame payload (§5.5).
const maxControl = 125

// protoError is a violation of RFC 6455 by the peer: the connection is
// closed with code.
type protoError struct {
	code uint16
	text string
}

func (e *protoError) Error() string { return fmt.Sprintf("ws: %s (close %d)", e.text, e.code) }

// errPeerClosed: the peer sent a close frame (answered already).
var errPeerClosed = fmt.Errorf("ws: closed by the peer: %w", io.EOF)

// frameReader follows the client's frames. Its state is a few dozen bytes;
// it holds no buffer while idle (ctl exists only while a control frame is
// arriving).
type frameReader struct {
	hdr  [14]byte // the frame header read so far
	hn   int
	have bool // a frame header is complete; payload follows

	op     byte
	fin    bool
	key    [4]byte
	kpos   int
	remain uint64

	inMsg  bool  // a data message is open (its first frame was read)
	msgLen int64 // payload bytes of the open message so far
	limit  int64 // largest message
	u      utf8State

	ctl []byte // payload of the control frame being read
}

// control is what the reader asks of the connection when a control frame
// is complete.
type control interface {
	ping(payload []byte) error
	pong()
	peerClose(payload []byte)
}

// byteSource is the read-ahead the frame reader consumes: buffered returns
// what is already read, fill reads more (or returns the read's error,
// idle.ErrWouldBlock included).
type byteSource interface {
	buffered() []byte
	consume(n int)
	fill() error
}

// payload reads message payload into p (unmasked). eom reports the end of
// the current message (possibly with n > 0). Control frames between are
// handled through ctl. A message's first frame of type binary is reported
// as errBinary.
func (f *frameReader) payload(src byteSource, ctl control, p []byte) (n int, eom bool, err error) {
	for {
		if f.have && f.remain > 0 {
			b := src.buffered()
			if len(b) == 0 {
				if err := src.fill(); err != nil {
					return 0, false, err
				}
				continue
			}
			k := uint64(len(b))
			if k > f.remain {
				k = f.remain
			}
			if f.op >= opClose {
				f.ctl = append(f.ctl, b[:k]...)
				f.kpos = unmask(f.ctl[len(f.ctl)-int(k):], f.key, f.kpos)
				src.consume(int(k))
				f.remain -= k
				continue
			}
			if k > uint64(len(p)) {
				k = uint64(len(p))
			}
			if k == 0 {
				return 0, false, nil
			}
			// Counted as it arrives, not from the header: c2s's parser
			// sees the stanza's bytes up to its own limit first and
			// answers with a stream error; this is the backstop.
			if f.msgLen+int64(k) > f.limit {
				return 0, false, &protoError{closeTooBig, "message over the limit"}
			}
			f.msgLen += int64(k)
			copy(p, b[:k])
			src.consume(int(k))
			f.kpos = unmask(p[:k], f.key, f.kpos)
			f.remain -= k
			if !f.u.feed(p[:k]) {
				return 0, false, &protoError{closeBadData, "text message is not UTF-8"}
			}
			n = int(k)
			if f.remain > 0 {
				return n, false, nil
			}
		}
		if f.have {
			// The frame is complete.
			f.have = false
			if f.op >= opClose {
				payload := f.ctl
				f.ctl = nil
				if err := f.control(ctl, payload); err != nil {
					return n, false, err
				}
				continue
			}
			if f.fin {
				f.inMsg = false
				if f.u.need != 0 {
					return 0, false, &protoError{closeBadData, "text message ends inside a UTF-8 sequence"}
				}
				return n, true, nil
			}
			if n > 0 {
				return n, false, nil
			}
			continue
		}
		if err := f.header(src); err != nil {
			return 0, false, err
		}
	}
}

// errBinary: RFC 7395 carries XML in text messages only.
var errBinary = errors.New("ws: binary message")

// header reads and checks the next frame header.
func (f *frameReader) header(src byteSource) error {
	need := 2
	if f.hn >= 2 {
		// Resumed after a read that would have blocked.
		need = headerLen(f.hdr[1])
	}
	for f.hn < need {
		b := src.buffered()
		if len(b) == 0 {
			if err := src.fill(); err != nil {
				return err
			}
			continue
		}
		k := copy(f.hdr[f.hn:need], b)
		src.consume(k)
		f.hn += k
		if f.hn >= 2 {
			need = headerLen(f.hdr[1])
		}
	}
	h := f.hdr[:f.hn]
	f.hn = 0
	b0, b1 := h[0], h[1]
	if b0&0x70 != 0 {
		return &protoError{closeProtocol, "reserved bits set (no extension was agreed)"}
	}
	if b1&0x80 == 0 {
		return &protoError{closeProtocol, "client frame not masked"}
	}
	op, fin := b0&0x0f, b0&0x80 != 0
	var n uint64
	switch l := b1 & 0x7f; l {
	case 126:
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		n = binary.BigEndian.Uint64(h[2:10])
		if n>>63 != 0 {
			return &protoError{closeProtocol, "frame length with its top bit set"}
		}
	default:
		n = uint64(l)
	}
	copy(f.key[:], h[len(h)-4:])
	switch op {
	case opClose, opPing, opPong:
		if !fin || n > maxControl {
			return &protoError{closeProtocol, "fragmented or oversized control frame"}
		}
	case opCont:
		if !f.inMsg {
			return &protoError{closeProtocol, "continuation frame outside a message"}
		}
	case opText, opBin:
		if f.inMsg {
			return &protoError{closeProtocol, "new message inside a fragmented one"}
		}
		if op == opBin {
			return errBinary
		}
		f.inMsg, f.msgLen, f.u = true, 0, utf8State{}
	default:
		return &protoError{closeProtocol, fmt.Sprintf("unknown opcode %#x", op)}
	}
	if op >= opClose {
		f.ctl = make([]byte, 0, n)
	}
	f.op, f.fin, f.remain, f.kpos, f.have = op, fin, n, 0, true
	if op == opCont {
		f.op = opText
	}
	return nil
}

// headerLen is the length of a client frame header from its second byte.
func headerLen(b1 byte) int {
	n := 2 + 4 // masked: every client frame (checked after)
	if b1&0x80 == 0 {
		n -= 4
	}
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	return n
}

func (f *frameReader) control(ctl control, payload []byte) error {
	switch f.op {
	case opPing:
		return ctl.ping(payload)
	case opPong:
		ctl.pong()
		return nil
	}
	// Close (§5.5.1): a code of two bytes and a UTF-8 reason, or nothing.
	switch {
	case len(payload) == 1:
		return &protoError{closeProtocol, "close frame of one byte"}
	case len(payload) >= 2:
		if !validCloseCode(binary.BigEndian.Uint16(payload)) {
			return &protoError{closeProtocol, "invalid close code"}
		}
		var u utf8State
		if !u.feed(payload[2:]) || u.need != 0 {
			return &protoError{closeBadData, "close reason is not UTF-8"}
		}
	}
	ctl.peerClose(payload)
	return errPeerClosed
}

// validCloseCode: the codes a peer may send (§7.4).
func validCloseCode(c uint16) bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1011:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// unmask XORs b with key starting at key position pos; it returns the
// position after b.
func unmask(b []byte, key [4]byte, pos int) int {
	i := 0
	if len(b) >= 8 {
		// Eight bytes at a time with the key rotated to pos.
		var k [8]byte
		for j := range k {
			k[j] = key[(pos+j)&3]
		}
		k64 := binary.LittleEndian.Uint64(k[:])
		for ; i+8 <= len(b); i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
		}
	}
	for ; i < len(b); i++ {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}

// utf8State validates UTF-8 across frame boundaries (RFC 6455 §8.1: a text
// message must be UTF-8 as a whole, whatever its fragmentation).
type utf8State struct {
	need   uint8 // continuation bytes still expected
	lo, hi byte  // range of the next continuation byte
}

func (s *utf8State) feed(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if s.need == 0 {
			if c < 0x80 {
				continue
			}
			switch {
			case c >= 0xc2 && c <= 0xdf:
				s.need, s.lo, s.hi = 1, 0x80, 0xbf
			case c == 0xe0:
				s.need, s.lo, s.hi = 2, 0xa0, 0xbf
			case c == 0xed:
				s.need, s.lo, s.hi = 2, 0x80, 0x9f // no surrogates
			case c >= 0xe1 && c <= 0xef:
				s.need, s.lo, s.hi = 2, 0x80, 0xbf
			case c == 0xf0:
				s.need, s.lo, s.hi = 3, 0x90, 0xbf
			case c >= 0xf1 && c <= 0xf3:
				s.need, s.lo, s.hi = 3, 0x80, 0xbf
			case c == 0xf4:
				s.need, s.lo, s.hi = 3, 0x80, 0x8f // up to U+10FFFF
			default:
				return false
			}
			continue
		}
		if c < s.lo || c > s.hi {
			return false
		}
		s.need--
		s.lo, s.hi = 0x80, 0xbf
	}
	return true
}

// appendFrame appends a server frame (never masked, always final).
func appendFrame(b []byte, op byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, 0x80|op, byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|op, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|op, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// Buffers. A connection takes one only while bytes are in flight and
// gives it back before it waits, so an idle session holds none.
const (
	readBufSize = 4 << 10
	// maxPooled: a buffer grown past this by a large write is dropped
	// rather than kept in the pool (no pooled buffer over 64 KiB).
	maxPooled = 64 << 10
)

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}
