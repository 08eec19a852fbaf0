package ws

import (
	"bytes"
	"errors"
	"strings"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// RFC 7395 framing, both ways, translated to and from the byte stream
// that c2s reads and writes on TCP.

// NSFraming is the namespace of <open/> and <close/> (RFC 7395 §3.3.2).
const NSFraming = "urn:ietf:params:xml:ns:xmpp-framing"

// errFrame is what a message breaking "one whole element per message"
// (RFC 7395 §3.3.3) ends the stream with.
func errFrame(text string) error {
	return &stream.Error{Condition: "policy-violation", Text: text}
}

// frameCheck follows the markup of one incoming message just far enough to
// tell where its top-level element ends: a second element (or text) after
// it, or a message that ends inside it, is refused. The stream parser
// checks everything else (well-formedness, limits); on input it rejects,
// it does not matter that this scanner is simpler.
type frameCheck struct {
	st        int // outside, tagStart, tag
	depth     int
	quote     byte
	endTag    bool
	prevSlash bool
	done      bool // the top-level element is complete
}

const (
	outside = iota
	tagStart
	inTag
)

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (f *frameCheck) feed(b []byte) error {
	for _, c := range b {
		switch f.st {
		case outside:
			if c == '<' {
				f.st = tagStart
			} else if f.depth == 0 && !isSpace(c) {
				return errFrame("text outside the element of a WebSocket message")
			}
		case tagStart:
			switch c {
			case '/':
				f.endTag = true
			case '?', '!':
				// XML declarations, comments, CDATA: never in XMPP.
				return &stream.Error{Condition: "restricted-xml"}
			default:
				if f.depth == 0 && f.done {
					return errFrame("two elements in one WebSocket message (RFC 7395: one per message)")
				}
				f.endTag = false
			}
			f.st, f.prevSlash, f.quote = inTag, false, 0
		case inTag:
			switch {
			case f.quote != 0:
				if c == f.quote {
					f.quote = 0
				}
			case c == '\'' || c == '"':
				f.quote = c
			case c == '>':
				switch {
				case f.endTag:
					f.depth--
					if f.depth < 0 {
						return errFrame("end tag without a start tag")
					}
				case !f.prevSlash:
					f.depth++
				}
				if f.depth == 0 {
					f.done = true
				}
				f.st = outside
			}
			f.prevSlash = c == '/'
		}
	}
	return nil
}

// end checks the message ended with its element complete.
func (f *frameCheck) end() error {
	if !f.done || f.depth != 0 || f.st != outside {
		return errFrame("a WebSocket message must hold one whole element")
	}
	return nil
}

// tagEnd returns the index of the '>' ending the tag that starts at b[0]
// ('<'), or -1 if b holds no complete tag.
func tagEnd(b []byte) int {
	var quote byte
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			return i
		}
	}
	return -1
}

// streamHeader turns the client's <open/> into the stream header c2s
// reads on TCP; what it does with it (to, version) is c2s's concern.
func streamHeader(open *stream.Element) []byte {
	b := []byte("<stream:stream xmlns='jabber:client' xmlns:stream='" + stream.NSStream + "'")
	for _, a := range open.Attr {
		var name string
		switch {
		case a.Space == "" && (a.Local == "to" || a.Local == "from" || a.Local == "version" || a.Local == "id"):
			name = a.Local
		case a.Space == "http://www.w3.org/XML/1998/namespace" && a.Local == "lang":
			name = "xml:lang"
		default:
			continue
		}
		b = append(b, ' ')
		b = append(b, name...)
		b = append(b, "='"...)
		b = stream.AppendEscaped(b, a.Value, true)
		b = append(b, '\'')
	}
	return append(b, '>')
}

// outFrames splits what c2s and the session write (whole elements, the
// stream header, the closing tag) into RFC 7395 messages: the header
// becomes <open/>, </stream:stream> becomes <close/>, and every top-level
// element one message of its own that declares its namespaces (a message
// is a document of its own: stanzas get xmlns='jabber:client', stream
// features and errors their stream prefix).
type outFrames struct {
	carry []byte
}

var errOutput = errors.New("ws: unexpected output from c2s")

// split appends b and calls emit for each complete message.
func (o *outFrames) split(b []byte, emit func([]byte) error) error {
	rest := b
	if len(o.carry) > 0 {
		rest = append(o.carry, b...)
	}
	for {
		i := 0
		for i < len(rest) && rest[i] != '<' {
			i++
		}
		rest = rest[i:]
		if len(rest) == 0 {
			break
		}
		end := tagEnd(rest)
		if end < 0 {
			break
		}
		tag := rest[:end+1]
		switch {
		case bytes.HasPrefix(tag, []byte("<?")):
			rest = rest[end+1:]
			continue
		case bytes.HasPrefix(tag, []byte("</stream:stream")):
			if err := emit([]byte("<close xmlns='" + NSFraming + "'/>")); err != nil {
				return err
			}
			rest = rest[end+1:]
			continue
		case bytes.HasPrefix(tag, []byte("<stream:stream ")):
			open, ok := headerToOpen(tag)
			if !ok {
				return errOutput
			}
			if err := emit(open); err != nil {
				return err
			}
			rest = rest[end+1:]
			continue
		}
		n := elementEnd(rest)
		if n < 0 {
			break
		}
		if err := emit(declare(rest[:n], end)); err != nil {
			return err
		}
		rest = rest[n:]
	}
	// Keep only the unfinished part (normally nothing: writes are
	// whole), in a buffer of its own: an idle session holds none.
	o.carry = nil
	if len(rest) > 0 {
		o.carry = append([]byte(nil), rest...)
	}
	return nil
}

// headerToOpen rewrites our own stream header (c2s's conn.header) as
// <open/>.
func headerToOpen(tag []byte) ([]byte, bool) {
	h := string(tag)
	pre := "<stream:stream xmlns='jabber:client' xmlns:stream='" + stream.NSStream + "'"
	if !strings.HasPrefix(h, pre) || !strings.HasSuffix(h, ">") {
		return nil, false
	}
	attrs := strings.TrimSuffix(h[len(pre):], ">")
	return []byte("<open xmlns='" + NSFraming + "'" + attrs + "/>"), true
}

// elementEnd returns the length of the element starting at b[0], or -1
// if it is not complete in b.
func elementEnd(b []byte) int {
	depth := 0
	i := 0
	for i < len(b) {
		if b[i] != '<' {
			i++
			continue
		}
		e := tagEnd(b[i:])
		if e < 0 {
			return -1
		}
		tag := b[i : i+e+1]
		switch {
		case len(tag) > 1 && tag[1] == '/':
			depth--
		case tag[len(tag)-2] != '/':
			depth++
		}
		i += e + 1
		if depth == 0 {
			return i
		}
	}
	return -1
}

// declare adds the namespace declarations el needs as a document of its
// own; tagEnd is the index of its start tag's '>'.
func declare(el []byte, tagEnd int) []byte {
	start := string(el[:tagEnd+1])
	name := start[1:]
	if i := strings.IndexAny(name, " \t\n/>"); i >= 0 {
		name = name[:i]
	}
	var add string
	switch {
	case strings.HasPrefix(name, "stream:"):
		add = " xmlns:stream='" + stream.NSStream + "'"
	case !strings.Contains(name, ":") && !strings.Contains(start, " xmlns="):
		add = " xmlns='" + stream.NSClient + "'"
	default:
		return el
	}
	out := make([]byte, 0, len(el)+len(add))
	out = append(out, el[:1+len(name)]...)
	out = append(out, add...)
	return append(out, el[1+len(name):]...)
}
