package server

import (
	"bytes"
	"fmt"
	"os"
	"unsafe"

	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Serialized is a stanza's element already serialized by a hook, which
// the core then queues to the recipient's sessions instead of serializing
// the element once more. The message archive serializes every archived
// message for its journal, in the form the recipient is sent (stanza-id
// included): a second serialization for delivery was ~8% of the server's
// CPU at saturation (issue 13's archive-on against archive-off figure).
type Serialized interface {
	// Bytes is the element appended with its namespace explicit
	// (stream.Element.Append(b, "")), valid until Done.
	Bytes() []byte
	// Done is called once, when the core no longer reads Bytes.
	Done()
}

// serSig is what a hook after the one that serialized the element could
// change at its top level: its attributes (Set replaces a value's string)
// and its children (added, removed, replaced). A change there makes the
// bytes stale, and the element is serialized again (carbons removes
// <private/> after the archive serialized the message). Changes inside a
// child are not seen: hooks do not make them (CheckSerialized, which
// make test turns on, compares the bytes with a new serialization at
// every delivery).
type serSig struct {
	attrs, nodes int
	attr0        *stream.Attr
	node0        *stream.Node
	sum          uintptr // of the attribute values' and children's pointers and lengths
}

func sigOf(el *stream.Element) serSig {
	g := serSig{attrs: len(el.Attr), nodes: len(el.Nodes)}
	if len(el.Attr) > 0 {
		g.attr0 = &el.Attr[0]
	}
	if len(el.Nodes) > 0 {
		g.node0 = &el.Nodes[0]
	}
	for i := range el.Attr {
		v := el.Attr[i].Value
		g.sum = g.sum*31 + uintptr(unsafe.Pointer(unsafe.StringData(v))) + uintptr(len(v))
	}
	for i := range el.Nodes {
		n := &el.Nodes[i]
		g.sum = g.sum*31 + uintptr(unsafe.Pointer(n.El)) + uintptr(unsafe.Pointer(unsafe.StringData(n.Text))) + uintptr(len(n.Text))
	}
	return g
}

// SetSerialized gives st's element as it is now in serialized form; the
// core calls ser.Done when st has been delivered (or not).
func (st *Stanza) SetSerialized(ser Serialized) {
	if st.ser != nil {
		st.ser.Done()
	}
	st.ser, st.sig = ser, sigOf(st.El)
}

// serialized is st's serialized element, or nil when none was given or
// the element changed since.
func (st *Stanza) serialized() []byte {
	if st.ser == nil {
		return nil
	}
	if sigOf(st.El) != st.sig {
		st.releaseSerialized()
		return nil
	}
	b := st.ser.Bytes()
	if checkSerialized {
		if fresh := st.El.Append(nil, ""); !bytes.Equal(fresh, b) {
			// Only with the check on (tests): a wrong message must not
			// pass unnoticed as one more recovered handler panic.
			fmt.Fprintf(os.Stderr, "xmppd: stale serialized stanza:\n given %s\n  now  %s\n", b, fresh)
			os.Exit(3)
		}
	}
	return b
}

func (st *Stanza) releaseSerialized() {
	if st.ser != nil {
		st.ser.Done()
		st.ser = nil
	}
}

// sendTo queues st's element to sess, its serialized form if it has one.
func (st *Stanza) sendTo(sess *session.Session) bool {
	if b := st.serialized(); b != nil {
		return sess.SendSerialized(st.El, b)
	}
	return sess.Send(st.El)
}

// checkSerialized makes every delivery of a serialized stanza compare the
// bytes with a new serialization of its element and end the process if
// they differ (HEARTH_CHECK_SERIALIZED=1; make test sets it).
var checkSerialized = os.Getenv("HEARTH_CHECK_SERIALIZED") != ""
