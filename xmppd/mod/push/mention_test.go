package push_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/mod/push"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// TestRoomMentionPushes: server.Mentioned (a member named in a
// members-only room they are not in, issue 12) wakes the member's
// devices that are not connected, with the room occupant as sender and
// never the body; a blocked room wakes nobody; a connected device is not
// woken.
func TestRoomMentionPushes(t *testing.T) {
	old := push.MinInterval
	push.MinInterval = 100 * time.Millisecond // the test's second publish comes after one interval
	defer func() { push.MinInterval = old }()
	d := xmpptest.Start(t, nil)
	app := startApp(t, d, appHost, true)
	a := modtest.Login(t, d, "alice", "phone")
	if r := enable(t, a, appHost, "n1", secret); r.Get("type") != "result" {
		t.Fatalf("enable: %s", r)
	}
	const room = "team@groups." + xmpptest.Domain
	mention := server.Mention{User: "alice", Room: room, From: room + "/bob", Sender: bob, Body: "alice: dinner at 8?"}

	// Connected: the phone is online, nothing to wake.
	server.Mentioned.Fire(d.Server, mention)
	a.Sync()
	if n := app.count(); n != 0 {
		t.Fatalf("%d publishes for a connected device", n)
	}

	a.Close()
	waitFor(t, "alice offline", func() bool { return len(d.Server.Router.Sessions("alice")) == 0 })
	server.Mentioned.Fire(d.Server, mention)
	ps := app.next(t)
	f := summary(t, ps)
	if f["message-count"] != "1" || f["last-message-sender"] != room+"/bob" {
		t.Fatalf("summary %v", f)
	}
	if ps.Child(nsPubsub, "publish-options") == nil {
		t.Fatalf("publish-options not passed on: %s", ps)
	}
	if s := ps.String(); strings.Contains(s, "dinner") {
		t.Fatalf("the body went to the app server: %s", s)
	}

	// alice blocks the room: its mentions wake nobody. A message from
	// carol afterwards is the next publish (counted with the mention
	// before it: the count is since the device was last online).
	desk := modtest.Login(t, d, "alice", "desk")
	desk.Sendf("<iq type='set' id='bl'><block xmlns='urn:xmpp:blocking'><item jid='%s'/></block></iq>", room)
	if r := desk.Expect("block", func(el *stream.Element) bool { return el.Get("id") == "bl" }); r.Get("type") != "result" {
		t.Fatalf("block: %s", r)
	}
	desk.Close()
	waitFor(t, "alice offline", func() bool { return len(d.Server.Router.Sessions("alice")) == 0 })
	server.Mentioned.Fire(d.Server, mention)
	b := modtest.Login(t, d, "bob", "b")
	b.Sendf("<message to='%s' type='chat'><body>hello</body></message>", alice)
	if f := summary(t, app.next(t)); f["last-message-sender"] != bob+"/b" || f["message-count"] != "2" {
		t.Fatalf("publish after the blocked room's mention %v: the blocked mention counted", f)
	}
}
