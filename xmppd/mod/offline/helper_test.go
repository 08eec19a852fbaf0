package offline_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// cl is a logged-in test client with helpers to wait for stanzas.
type cl struct {
	*xmpptest.Client
	t   testing.TB
	jid string
}

var syncSeq atomic.Uint64

func login(t testing.TB, d *xmppd.Daemon, user, res string) *cl {
	t.Helper()
	c := xmpptest.Login(t, d, user, res)
	return &cl{Client: c, t: t, jid: user + "@" + xmpptest.Domain + "/" + res}
}

func (c *cl) sendf(format string, a ...any) {
	c.t.Helper()
	c.Send(fmt.Sprintf(format, a...))
}

// expect reads until pred matches, skipping at most 50 other elements.
func (c *cl) expect(what string, pred func(*stream.Element) bool) *stream.Element {
	c.t.Helper()
	var skipped []string
	for range 50 {
		el := c.El()
		if pred(el) {
			return el
		}
		skipped = append(skipped, el.String())
	}
	c.t.Fatalf("%s: never got %s; got:\n%s", c.jid, what, strings.Join(skipped, "\n"))
	return nil
}

// sync sends a roster get and returns what arrived before its result:
// the server handles a session's stanzas in order, so everything the
// previous stanzas caused for this session is queued before the result.
func (c *cl) sync() []*stream.Element {
	c.t.Helper()
	id := fmt.Sprintf("sync%d", syncSeq.Add(1))
	c.sendf("<iq type='get' id='%s'><query xmlns='jabber:iq:roster'/></iq>", id)
	var before []*stream.Element
	for range 200 {
		el := c.El()
		if el.Local == "iq" && el.Get("id") == id {
			return before
		}
		before = append(before, el)
	}
	c.t.Fatalf("%s: no answer to %s", c.jid, id)
	return nil
}

// quiet fails if anything but the sync answer arrives.
func (c *cl) quiet(why string) {
	c.t.Helper()
	if got := c.sync(); len(got) > 0 {
		var s []string
		for _, el := range got {
			s = append(s, el.String())
		}
		c.t.Fatalf("%s: %s, but got:\n%s", c.jid, why, strings.Join(s, "\n"))
	}
}

func isPresence(typ, from string) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		return el.Local == "presence" && el.Get("type") == typ && (from == "" || el.Get("from") == from)
	}
}

func isPush(jid string) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		if el.Local != "iq" || el.Get("type") != "set" {
			return false
		}
		q := el.Child("jabber:iq:roster", "query")
		return q != nil && q.Child("jabber:iq:roster", "item") != nil && q.Child("jabber:iq:roster", "item").Get("jid") == jid
	}
}

func item(push *stream.Element) *stream.Element {
	return push.Child("jabber:iq:roster", "query").Child("jabber:iq:roster", "item")
}

func errCond(el *stream.Element) string {
	if e := el.Child("", "error"); e != nil {
		if c := e.FirstChild(); c != nil {
			return c.Local
		}
	}
	return ""
}

// Close ends the stream and the connection.
func (c *cl) Close() {
	c.C.Write([]byte("</stream:stream>"))
	c.Raw.Close()
}
