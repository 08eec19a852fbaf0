// Package iqtest holds what the info modules' tests share: a logged-in
// client that sends an iq and waits for its answer.
package iqtest

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Domain is the test server's domain.
const Domain = xmpptest.Domain

// Client is a bound test client.
type Client struct {
	*xmpptest.Client
	JID string
}

var seq atomic.Uint64

// Login connects user (password user+"-pw", as xmpptest.Start creates
// them) over direct TLS and binds res.
func Login(t testing.TB, d *xmppd.Daemon, user, res string) *Client {
	t.Helper()
	c := xmpptest.Login(t, d, user, res)
	return &Client{Client: c, JID: user + "@" + Domain + "/" + res}
}

// IQ sends an iq of type typ to to ("" for none) with payload and returns
// the answer, skipping anything else that arrives meanwhile.
func (c *Client) IQ(typ, to, payload string) *stream.Element {
	c.T.Helper()
	id := fmt.Sprintf("q%d", seq.Add(1))
	attrTo := ""
	if to != "" {
		attrTo = " to='" + to + "'"
	}
	c.Send("<iq type='" + typ + "' id='" + id + "'" + attrTo + ">" + payload + "</iq>")
	var skipped []string
	for range 50 {
		el := c.El()
		if el.Local == "iq" && el.Get("id") == id {
			return el
		}
		skipped = append(skipped, el.String())
	}
	c.T.Fatalf("%s: no answer to %s; got:\n%s", c.JID, id, strings.Join(skipped, "\n"))
	return nil
}

// Result is like IQ and fails the test unless the answer is a result; it
// returns the payload (nil for an empty result).
func (c *Client) Result(typ, to, payload string) *stream.Element {
	c.T.Helper()
	r := c.IQ(typ, to, payload)
	if r.Get("type") != "result" {
		c.T.Fatalf("%s: %s: want a result, got %s", c.JID, payload, r)
	}
	return r.FirstChild()
}

// Cond returns the defined condition of an error answer, or "" (and the
// type "result") if it is not an error.
func Cond(r *stream.Element) string {
	if r.Get("type") != "error" {
		return ""
	}
	e := r.Child(stream.NSClient, "error")
	if e == nil {
		return "error without <error/>"
	}
	if c := e.ChildNS(stream.NSStanzaE); c != nil {
		return c.Local
	}
	return "error without condition"
}
