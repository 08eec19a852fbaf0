package smacks_test

import (
	"fmt"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

const ns = "urn:xmpp:sm:3"

func TestAckCounting(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := xmpptest.Login(t, d, "alice", "a")
	a.Send("<enable xmlns='" + ns + "'/>")
	if el := a.El(); el.Local != "enabled" || el.Has("id") {
		t.Fatalf("enable: %s", el)
	}
	for i := 0; i < 3; i++ {
		a.Send(fmt.Sprintf("<iq type='get' id='p%d'><ping xmlns='urn:xmpp:ping'/></iq>", i))
	}
	a.Send("<r xmlns='" + ns + "'/>")
	for {
		el := a.El()
		if el.Local == "a" {
			if el.Get("h") != "3" {
				t.Fatalf("h = %s, want 3", el.Get("h"))
			}
			break
		}
	}
	// Acknowledging more than was sent is a protocol error.
	a.Send("<a xmlns='" + ns + "' h='1000'/>")
	a.StreamError("undefined-condition")
}

func TestResumeGetsMissedMessages(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := xmpptest.Login(t, d, "alice", "phone")
	a.Send("<enable xmlns='" + ns + "' resume='true'/>")
	en := a.El()
	id := en.Get("id")
	if en.Local != "enabled" || id == "" || en.Get("resume") != "true" {
		t.Fatalf("enable: %s", en)
	}
	b := xmpptest.Login(t, d, "bob", "b")
	b.Send("<message to='alice@" + xmpptest.Domain + "/phone' type='chat'><body>one</body></message>")
	if el := a.El(); el.ChildText("", "body") != "one" {
		t.Fatalf("alice got %s", el)
	}
	// The phone loses its network: no closing tag, the socket just dies.
	a.Raw.Close()
	for i := 2; i <= 4; i++ {
		b.Send(fmt.Sprintf("<message to='alice@%s/phone' type='chat'><body>m%d</body></message>", xmpptest.Domain, i))
	}
	b.Send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
	for b.El().Get("id") != "sync" {
	}
	// It comes back and resumes, having handled one stanza ("one").
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	if el := c.Auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
		t.Fatal(el)
	}
	f := c.Open()
	if f.Child(ns, "sm") == nil {
		t.Fatalf("sm not offered before bind: %s", f)
	}
	c.Send("<resume xmlns='" + ns + "' previd='" + id + "' h='1'/>")
	if el := c.El(); el.Local != "resumed" || el.Get("previd") != id {
		t.Fatalf("resume: %s", el)
	}
	var got []string
	for len(got) < 3 {
		el := c.El()
		if el.Local == "message" {
			got = append(got, el.ChildText("", "body"))
		}
	}
	if fmt.Sprint(got) != "[m2 m3 m4]" {
		t.Fatalf("after resumption got %v", got)
	}
	// The session is live on the new connection.
	b.Send("<message to='alice@" + xmpptest.Domain + "/phone' type='chat'><body>m5</body></message>")
	for {
		el := c.El()
		if el.Local == "message" {
			if el.ChildText("", "body") != "m5" {
				t.Fatalf("got %s", el)
			}
			break
		}
	}
}

func TestResumeUnknownID(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	c.Auth("SCRAM-SHA-256", "alice", "alice-pw")
	c.Open()
	c.Send("<resume xmlns='" + ns + "' previd='nope' h='0'/>")
	if el := c.El(); el.Local != "failed" {
		t.Fatalf("resume of an unknown session: %s", el)
	}
	// Binding still works after a failed resumption.
	c.Bind("r")
}
