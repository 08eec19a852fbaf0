package server

import (
	"errors"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// StanzaError is an RFC 6120 §8.3 stanza error.
type StanzaError struct {
	Type      string // cancel, continue, modify, auth, wait
	Condition string
	Text      string
	Extra     *stream.Element // an application-specific condition
}

func (e *StanzaError) Error() string { return e.Condition }

// Err returns a stanza error of the given type and condition.
func Err(typ, cond string) *StanzaError { return &StanzaError{Type: typ, Condition: cond} }

// Common stanza errors.
var (
	ErrServiceUnavailable = Err("cancel", "service-unavailable")
	ErrBadRequest         = Err("modify", "bad-request")
	ErrNotAllowed         = Err("cancel", "not-allowed")
	ErrForbidden          = Err("auth", "forbidden")
	ErrItemNotFound       = Err("cancel", "item-not-found")
	ErrFeatureNotImpl     = Err("cancel", "feature-not-implemented")
	ErrInternal           = Err("wait", "internal-server-error")
	ErrJIDMalformed       = Err("modify", "jid-malformed")
	ErrRemoteNotFound     = Err("cancel", "remote-server-not-found")
	ErrNotAcceptable      = Err("modify", "not-acceptable")
	ErrResourceConstraint = Err("wait", "resource-constraint")
)

// Element renders the <error/> child.
func (e *StanzaError) Element() *stream.Element {
	el := stream.New(stream.NSClient, "error", "type", e.Type)
	el.Add(stream.New(stream.NSStanzaE, e.Condition))
	if e.Text != "" {
		el.Add(stream.New(stream.NSStanzaE, "text").AddText(e.Text))
	}
	el.Add(e.Extra)
	return el
}

// ErrorReply turns a stanza into its error bounce: addresses swapped, type
// error, the original payload kept (RFC 6120 §8.3.1 allows it and clients
// use it to tell which message failed).
func ErrorReply(orig *stream.Element, err error) *stream.Element {
	var se *StanzaError
	if !errors.As(err, &se) {
		se = ErrInternal
	}
	r := &stream.Element{Space: orig.Space, Local: orig.Local}
	if v := orig.Get("id"); v != "" {
		r.Set("id", v)
	}
	r.Set("type", "error")
	r.Set("to", orig.Get("from"))
	r.Set("from", orig.Get("to"))
	if orig.Local != "iq" {
		for _, n := range orig.Nodes {
			if n.El != nil && n.El.Local != "error" {
				r.Nodes = append(r.Nodes, n)
			}
		}
	}
	return r.Add(se.Element())
}
