package stream

import (
	"strconv"
	"unicode/utf8"
)

// binding is one prefix declaration in force while serializing; a linked
// list because scopes are short and mostly empty.
type binding struct {
	prefix, space string
	up            *binding
}

func (b *binding) lookup(prefix string) (string, bool) {
	for ; b != nil; b = b.up {
		if b.prefix == prefix {
			return b.space, true
		}
	}
	return "", false
}

// Append serializes e onto b. defNS is the default namespace in force where
// e is written (the stream's content namespace for a stanza), so children in
// that namespace need no declaration. Prefixes used in the source are kept
// and declared where the output would otherwise leave them unbound.
func (e *Element) Append(b []byte, defNS string) []byte {
	return e.appendScoped(b, defNS, nil)
}

func (e *Element) appendScoped(b []byte, defNS string, sc *binding) []byte {
	b = append(b, '<')
	if e.Prefix != "" {
		b = append(b, e.Prefix...)
		b = append(b, ':')
	}
	b = append(b, e.Local...)
	childDef := defNS
	if e.Prefix == "" {
		if e.Space != defNS {
			b = appendAttr(b, "xmlns", e.Space)
			childDef = e.Space
		}
	} else if s, ok := sc.lookup(e.Prefix); !ok || s != e.Space {
		b = appendAttr(b, "xmlns:"+e.Prefix, e.Space)
		sc = &binding{prefix: e.Prefix, space: e.Space, up: sc}
	}
	for i := range e.Attr {
		a := &e.Attr[i]
		if a.Space == "" {
			b = appendAttr(b, a.Local, a.Value)
			continue
		}
		if a.Space == NSXML {
			b = appendAttr(b, "xml:"+a.Local, a.Value)
			continue
		}
		p := a.Prefix
		if p == "" || p == "xml" || p == "xmlns" {
			p = "ns" + strconv.Itoa(i)
		}
		if s, ok := sc.lookup(p); !ok || s != a.Space {
			b = appendAttr(b, "xmlns:"+p, a.Space)
			sc = &binding{prefix: p, space: a.Space, up: sc}
		}
		b = appendAttr(b, p+":"+a.Local, a.Value)
	}
	if len(e.Nodes) == 0 {
		return append(b, '/', '>')
	}
	b = append(b, '>')
	for _, n := range e.Nodes {
		if n.El != nil {
			b = n.El.appendScoped(b, childDef, sc)
		} else {
			b = AppendEscaped(b, n.Text, false)
		}
	}
	b = append(b, '<', '/')
	if e.Prefix != "" {
		b = append(b, e.Prefix...)
		b = append(b, ':')
	}
	b = append(b, e.Local...)
	return append(b, '>')
}

func appendAttr(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=', '\'')
	b = AppendEscaped(b, value, true)
	return append(b, '\'')
}

// AppendEscaped escapes s as character data (attr false) or as a value
// between single quotes (attr true). Characters XML forbids are dropped
// rather than written: the output must always parse.
func AppendEscaped(b []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		width := 1
		switch {
		case c == '&':
			esc = "&amp;"
		case c == '<':
			esc = "&lt;"
		case c == '>':
			esc = "&gt;"
		case c == '\'' && attr:
			esc = "&apos;"
		case c == '"' && attr:
			esc = "&quot;"
		case c == '\r':
			esc = "&#xD;"
		case (c == '\n' || c == '\t') && attr:
			if c == '\n' {
				esc = "&#xA;"
			} else {
				esc = "&#x9;"
			}
		case c < 0x20 && c != '\n' && c != '\t':
			esc = ""
		case c >= utf8.RuneSelf:
			r, w := utf8.DecodeRuneInString(s[i:])
			width = w
			if isXMLChar(r) && !(r == utf8.RuneError && w == 1) {
				i += w
				continue
			}
			esc = ""
		default:
			i++
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		i += width
		last = i
	}
	return append(b, s[last:]...)
}

func isXMLChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD ||
		(r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}
