// Package stream is Hearth's XML stream layer: a parser for the restricted
// XML subset XMPP allows (RFC 6120 §11) that enforces size, element and
// depth limits while bytes arrive, and the element type the rest of xmppd
// passes around.
//
// We do not use encoding/xml: it accepts DTDs, comments, processing
// instructions, duplicate attributes and unbound prefixes, it cannot stop a
// token that is growing without bound, and it allocates heavily per token.
package stream

import (
	"strings"
)

// Well-known namespaces.
const (
	NSStream  = "http://etherx.jabber.org/streams"
	NSClient  = "jabber:client"
	NSServer  = "jabber:server"
	NSXML     = "http://www.w3.org/XML/1998/namespace"
	NSStreamE = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzaE = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// Attr is one attribute. Space is empty for unprefixed attributes.
type Attr struct {
	Space, Local string
	Prefix       string // as written in the source; kept so forwarding does not rename it
	Value        string
}

// Node is one child of an element: either a child element or character data.
type Node struct {
	El   *Element
	Text string
}

// Element is an XML element with its namespace resolved.
type Element struct {
	Space, Local string
	Prefix       string // as written in the source, "" for the default namespace
	Attr         []Attr
	Nodes        []Node
}

// New returns an element in namespace space with the given unprefixed
// attributes, given as name/value pairs.
func New(space, local string, attrs ...string) *Element {
	e := &Element{Space: space, Local: local}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.Attr = append(e.Attr, Attr{Local: attrs[i], Value: attrs[i+1]})
	}
	return e
}

// Get returns the value of the unprefixed attribute name.
func (e *Element) Get(name string) string {
	for i := range e.Attr {
		if e.Attr[i].Local == name && e.Attr[i].Space == "" {
			return e.Attr[i].Value
		}
	}
	return ""
}

// Has reports whether the unprefixed attribute name is present.
func (e *Element) Has(name string) bool {
	for i := range e.Attr {
		if e.Attr[i].Local == name && e.Attr[i].Space == "" {
			return true
		}
	}
	return false
}

// Lang returns xml:lang.
func (e *Element) Lang() string {
	for i := range e.Attr {
		if e.Attr[i].Local == "lang" && e.Attr[i].Space == NSXML {
			return e.Attr[i].Value
		}
	}
	return ""
}

// Set sets (or, with an empty value, removes) the unprefixed attribute name.
func (e *Element) Set(name, value string) *Element {
	for i := range e.Attr {
		if e.Attr[i].Local == name && e.Attr[i].Space == "" {
			if value == "" {
				e.Attr = append(e.Attr[:i], e.Attr[i+1:]...)
			} else {
				e.Attr[i].Value = value
			}
			return e
		}
	}
	if value != "" {
		e.Attr = append(e.Attr, Attr{Local: name, Value: value})
	}
	return e
}

// Add appends child elements and returns e, for building stanzas inline.
func (e *Element) Add(children ...*Element) *Element {
	for _, c := range children {
		if c != nil {
			e.Nodes = append(e.Nodes, Node{El: c})
		}
	}
	return e
}

// AddText appends character data.
func (e *Element) AddText(s string) *Element {
	if s != "" {
		e.Nodes = append(e.Nodes, Node{Text: s})
	}
	return e
}

// Child returns the first child element with this name and namespace
// (space "" matches any namespace).
func (e *Element) Child(space, local string) *Element {
	for _, n := range e.Nodes {
		if n.El != nil && n.El.Local == local && (space == "" || n.El.Space == space) {
			return n.El
		}
	}
	return nil
}

// ChildNS returns the first child element in namespace space.
func (e *Element) ChildNS(space string) *Element {
	for _, n := range e.Nodes {
		if n.El != nil && n.El.Space == space {
			return n.El
		}
	}
	return nil
}

// Children returns the child elements.
func (e *Element) Children() []*Element {
	var out []*Element
	for _, n := range e.Nodes {
		if n.El != nil {
			out = append(out, n.El)
		}
	}
	return out
}

// FirstChild returns the first child element, or nil.
func (e *Element) FirstChild() *Element {
	for _, n := range e.Nodes {
		if n.El != nil {
			return n.El
		}
	}
	return nil
}

// Text returns the element's own character data.
func (e *Element) Text() string {
	var only string
	var b *strings.Builder
	for _, n := range e.Nodes {
		if n.El != nil || n.Text == "" {
			continue
		}
		if b == nil && only == "" {
			only = n.Text
			continue
		}
		if b == nil {
			b = &strings.Builder{}
			b.WriteString(only)
		}
		b.WriteString(n.Text)
	}
	if b != nil {
		return b.String()
	}
	return only
}

// ChildText returns the text of the first child with this name, or "".
func (e *Element) ChildText(space, local string) string {
	if c := e.Child(space, local); c != nil {
		return c.Text()
	}
	return ""
}

// RemoveChildren drops every child element in namespace space named local
// (local "" drops the whole namespace).
func (e *Element) RemoveChildren(space, local string) {
	out := e.Nodes[:0]
	for _, n := range e.Nodes {
		if n.El != nil && n.El.Space == space && (local == "" || n.El.Local == local) {
			continue
		}
		out = append(out, n)
	}
	for i := len(out); i < len(e.Nodes); i++ {
		e.Nodes[i] = Node{}
	}
	e.Nodes = out
}

// Copy returns a deep copy, so a handler can change a stanza that others
// still hold (a carbon copy, an archived message) without racing them.
func (e *Element) Copy() *Element {
	c := &Element{Space: e.Space, Local: e.Local, Prefix: e.Prefix}
	if len(e.Attr) > 0 {
		c.Attr = append([]Attr(nil), e.Attr...)
	}
	if len(e.Nodes) > 0 {
		c.Nodes = make([]Node, len(e.Nodes))
		for i, n := range e.Nodes {
			if n.El != nil {
				c.Nodes[i] = Node{El: n.El.Copy()}
			} else {
				c.Nodes[i] = n
			}
		}
	}
	return c
}

// String serializes the element (for logs and tests).
func (e *Element) String() string {
	return string(e.Append(nil, ""))
}
