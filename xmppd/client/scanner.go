package client

import (
	"bufio"
	"errors"
	"fmt"
)

// kind says what the scanner found at the top level of a stream.
type kind int

const (
	kindStanza kind = iota // a complete element at depth 1
	kindHeader             // the <stream:stream …> open tag
	kindEnd                // </stream:stream>
)

// maxItem bounds one stanza so that a broken server cannot make a
// load generator grow without limit.
const maxItem = 1 << 20

var errTooLarge = errors.New("client: stanza larger than 1 MiB")

// scanner cuts an XML stream into top-level elements without building a
// tree: a load generator spends its one core on sockets and TLS, not on
// decoding. It trusts the server to send well-formed XML and only tracks
// tag nesting, quoted attribute values, comments, CDATA and PIs.
type scanner struct {
	r     *bufio.Reader
	buf   []byte
	depth int
}

func newScanner(r *bufio.Reader) *scanner { return &scanner{r: r} }

// next returns the next top-level item. The bytes are valid until the
// next call.
func (s *scanner) next() (kind, []byte, error) {
	s.buf = s.buf[:0]
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		if c != '<' {
			if s.depth > 1 {
				if err := s.add(c); err != nil {
					return 0, nil, err
				}
			}
			// Text between stanzas (whitespace keepalives) is dropped.
			continue
		}
		start := len(s.buf)
		if s.depth <= 1 {
			s.buf = s.buf[:0]
			start = 0
		}
		if err := s.add('<'); err != nil {
			return 0, nil, err
		}
		if err := s.readTag(); err != nil {
			return 0, nil, err
		}
		tag := s.buf[start:]
		switch {
		case len(tag) >= 2 && (tag[1] == '?' || tag[1] == '!'):
			// XML declaration, comment or CDATA: only meaningful inside a stanza.
			if s.depth <= 1 {
				s.buf = s.buf[:0]
			}
		case len(tag) >= 2 && tag[1] == '/':
			s.depth--
			switch {
			case s.depth == 0:
				return kindEnd, s.buf, nil
			case s.depth == 1:
				return kindStanza, s.buf, nil
			case s.depth < 0:
				return 0, nil, fmt.Errorf("client: unbalanced close tag %q", tag)
			}
		case tag[len(tag)-2] == '/':
			if s.depth == 1 {
				return kindStanza, s.buf, nil
			}
		default:
			s.depth++
			if s.depth == 1 {
				return kindHeader, s.buf, nil
			}
		}
	}
}

func (s *scanner) add(c byte) error {
	if len(s.buf) >= maxItem {
		return errTooLarge
	}
	s.buf = append(s.buf, c)
	return nil
}

// readTag reads the rest of a markup construct after '<'.
func (s *scanner) readTag() error {
	first, err := s.r.ReadByte()
	if err != nil {
		return err
	}
	if err := s.add(first); err != nil {
		return err
	}
	if first == '!' {
		// Comment or CDATA: read up to the matching terminator.
		var end string
		p, _ := s.r.Peek(2)
		switch {
		case len(p) == 2 && p[0] == '-' && p[1] == '-':
			end = "-->"
		default:
			end = "]]>"
		}
		return s.readUntil(end)
	}
	if first == '?' {
		return s.readUntil("?>")
	}
	var quote byte
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return err
		}
		if err := s.add(c); err != nil {
			return err
		}
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return nil
		}
	}
}

func (s *scanner) readUntil(end string) error {
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			return err
		}
		if err := s.add(c); err != nil {
			return err
		}
		n := len(end)
		if len(s.buf) >= n && string(s.buf[len(s.buf)-n:]) == end {
			return nil
		}
	}
}
