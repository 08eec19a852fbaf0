package adhoc_test

import (
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = "http://jabber.org/protocol/commands"

func send(c *xmpptest.Client, attrs, inner string) *stream.Element {
	c.Send("<iq type='set' id='c' to='" + xmpptest.Domain + "'><command xmlns='" + ns + "' " + attrs + ">" + inner + "</command></iq>")
	return c.El()
}

func cond(el *stream.Element) string {
	if e := el.Child("", "error"); e != nil {
		var out []string
		for _, c := range e.Children() {
			out = append(out, c.Local)
		}
		return strings.Join(out, " ")
	}
	return ""
}

// TestSessions: a two-stage command keeps its session between stages for
// its own user only; cancel ends it; one account cannot pile up open
// sessions; the server advertises the commands feature.
func TestSessions(t *testing.T) {
	d := xmpptest.Start(t, nil)
	var got []string
	d.Server.AddCommand(server.Command{Node: "test#two", Name: "Two stages",
		Run: func(user string, form *stream.Element) (server.CommandReply, error) {
			if form == nil {
				return server.CommandReply{Form: stream.New("jabber:x:data", "x", "type", "form")}, nil
			}
			got = append(got, user)
			return server.CommandReply{Done: true, Note: "done"}, nil
		}})
	alice := xmpptest.Login(t, d, "alice", "a")
	bob := xmpptest.Login(t, d, "bob", "b")

	alice.Send("<iq type='get' id='i' to='" + xmpptest.Domain + "'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if el := alice.El(); !strings.Contains(el.String(), ns) {
		t.Fatalf("commands feature not advertised: %s", el)
	}
	el := send(alice, "node='test#two' action='execute'", "")
	cmd := el.Child(ns, "command")
	if cmd == nil || cmd.Get("status") != "executing" || cmd.Get("sessionid") == "" || cmd.Child(ns, "actions") == nil {
		t.Fatalf("first stage: %s", el)
	}
	sid := cmd.Get("sessionid")
	if el := send(bob, "node='test#two' sessionid='"+sid+"'", "<x xmlns='jabber:x:data' type='submit'/>"); cond(el) != "bad-request bad-sessionid" {
		t.Fatalf("another account's session: %s", el)
	}
	el = send(alice, "node='test#two' sessionid='"+sid+"' action='complete'", "<x xmlns='jabber:x:data' type='submit'/>")
	if cmd := el.Child(ns, "command"); cmd == nil || cmd.Get("status") != "completed" || len(got) != 1 || got[0] != "alice" {
		t.Fatalf("second stage: %s (ran for %v)", el, got)
	}
	el = send(alice, "node='test#two'", "")
	sid = el.Child(ns, "command").Get("sessionid")
	if el := send(alice, "node='test#two' sessionid='"+sid+"' action='cancel'", ""); el.Child(ns, "command").Get("status") != "canceled" {
		t.Fatalf("cancel: %s", el)
	}
	if el := send(alice, "node='test#two' sessionid='"+sid+"'", "<x xmlns='jabber:x:data' type='submit'/>"); cond(el) != "bad-request bad-sessionid" {
		t.Fatalf("canceled session reused: %s", el)
	}
	if el := send(alice, "node='no#such'", ""); cond(el) != "item-not-found" {
		t.Fatalf("unknown node: %s", el)
	}
	// Sessions left open are bounded per account.
	for i := 0; ; i++ {
		el := send(alice, "node='test#two'", "")
		if c := cond(el); c != "" {
			if c != "resource-constraint" || i < 2 {
				t.Fatalf("open session %d: %s", i+1, el)
			}
			break
		}
		if i > 100 {
			t.Fatal("100 open sessions for one account")
		}
	}
	// Another account is not held up by alice's.
	if el := send(bob, "node='test#two'", ""); cond(el) != "" {
		t.Fatalf("bob after alice's pile: %s", el)
	}
}
