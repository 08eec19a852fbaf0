package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// Request/response over a session, for the phases that talk protocol
// (upload slots, room configuration, MAM) rather than move messages.

var iqSeq atomic.Int64

// nextID is a stanza id unique in this run.
func nextID(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, iqSeq.Add(1))
}

// iq sends an iq (type, to, payload) and waits up to limit for the answer
// with its id. An error answer is returned as an error naming its
// condition.
func (s *session) iq(typ, to, payload string, limit time.Duration) (*stream.Element, error) {
	id := nextID("q")
	ch := make(chan []byte, 1)
	f := func(b []byte) {
		if el, err := stream.ParseElement(b); err == nil && el.Get("id") == id {
			// b is the reader's buffer, reused for the next stanza.
			select {
			case ch <- bytes.Clone(b):
			default:
			}
		}
	}
	s.onIQ.Store(&f)
	defer s.onIQ.Store(nil)
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	stanza := "<iq type='" + typ + "' id='" + id + "'" + toAttr + ">" + payload + "</iq>"
	if err := s.c.Send([]byte(stanza)); err != nil {
		return nil, err
	}
	select {
	case b := <-ch:
		el, err := stream.ParseElement(b)
		if err != nil {
			return nil, fmt.Errorf("answer to iq %s: %w: %q", id, err, b)
		}
		if el.Get("type") == "error" {
			return el, fmt.Errorf("iq to %s refused: %s", to, stanzaError(el))
		}
		return el, nil
	case <-time.After(limit):
		return nil, fmt.Errorf("no answer from %s to iq %s within %v", to, id, limit)
	}
}

// stanzaError names the condition (and text) of an error stanza.
func stanzaError(el *stream.Element) string {
	e := el.Child(el.Space, "error")
	if e == nil {
		for _, c := range el.Children() {
			if c.Local == "error" {
				e = c
			}
		}
	}
	if e == nil {
		return "error without an <error/> child"
	}
	var parts []string
	for _, c := range e.Children() {
		if c.Local == "text" {
			parts = append(parts, "("+c.Text()+")")
		} else {
			parts = append([]string{c.Local}, parts...)
		}
	}
	return strings.Join(parts, " ")
}

// xmlEscape escapes s for an attribute or text.
func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;").Replace(s)
}
