// Package modtest is what the roster, presence and offline tests share: a
// logged-in client that waits for the stanzas a step should cause.
package modtest

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Client is a logged-in test client with helpers to wait for stanzas.
type Client struct {
	*xmpptest.Client
	t   testing.TB
	JID string
}

var syncSeq atomic.Uint64

// Login logs user in (password user+"-pw") and binds res.
func Login(t testing.TB, d *xmppd.Daemon, user, res string) *Client {
	t.Helper()
	c := xmpptest.Login(t, d, user, res)
	return &Client{Client: c, t: t, JID: user + "@" + xmpptest.Domain + "/" + res}
}

// Sendf sends a formatted string.
func (c *Client) Sendf(format string, a ...any) {
	c.t.Helper()
	c.Send(fmt.Sprintf(format, a...))
}

// Expect reads until pred matches, skipping at most 50 other elements.
func (c *Client) Expect(what string, pred func(*stream.Element) bool) *stream.Element {
	c.t.Helper()
	var skipped []string
	for range 50 {
		el := c.El()
		if pred(el) {
			return el
		}
		skipped = append(skipped, el.String())
	}
	c.t.Fatalf("%s: never got %s; got:\n%s", c.JID, what, strings.Join(skipped, "\n"))
	return nil
}

// Sync sends a roster get and returns what arrived before its result:
// the server handles a session's stanzas in order, so everything the
// previous stanzas caused for this session is queued before the result.
func (c *Client) Sync() []*stream.Element {
	c.t.Helper()
	id := fmt.Sprintf("sync%d", syncSeq.Add(1))
	c.Sendf("<iq type='get' id='%s'><query xmlns='jabber:iq:roster'/></iq>", id)
	var before []*stream.Element
	for range 200 {
		el := c.El()
		if el.Local == "iq" && el.Get("id") == id {
			return before
		}
		before = append(before, el)
	}
	c.t.Fatalf("%s: no answer to %s", c.JID, id)
	return nil
}

// Quiet fails if anything but the sync answer arrives.
func (c *Client) Quiet(why string) {
	c.t.Helper()
	if got := c.Sync(); len(got) > 0 {
		var s []string
		for _, el := range got {
			s = append(s, el.String())
		}
		c.t.Fatalf("%s: %s, but got:\n%s", c.JID, why, strings.Join(s, "\n"))
	}
}

// IsPresence matches a presence of type typ (from, if not "").
func IsPresence(typ, from string) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		return el.Local == "presence" && el.Get("type") == typ && (from == "" || el.Get("from") == from)
	}
}

// IsPush matches a roster push for jid.
func IsPush(jid string) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		if el.Local != "iq" || el.Get("type") != "set" {
			return false
		}
		q := el.Child("jabber:iq:roster", "query")
		return q != nil && q.Child("jabber:iq:roster", "item") != nil && q.Child("jabber:iq:roster", "item").Get("jid") == jid
	}
}

// Item is the item of a roster push.
func Item(push *stream.Element) *stream.Element {
	return push.Child("jabber:iq:roster", "query").Child("jabber:iq:roster", "item")
}

// ErrCond is the condition of a stanza error, or "".
func ErrCond(el *stream.Element) string {
	if e := el.Child("", "error"); e != nil {
		if c := e.FirstChild(); c != nil {
			return c.Local
		}
	}
	return ""
}

// Close ends the stream and the connection.
func (c *Client) Close() {
	c.C.Write([]byte("</stream:stream>"))
	c.Raw.Close()
}
