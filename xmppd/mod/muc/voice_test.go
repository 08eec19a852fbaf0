package muc_test

import (
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const voiceRequest = "<message to='%s'><x xmlns='jabber:x:data' type='submit'>" +
	"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>" +
	"<field var='muc#role' type='list-single'><value>participant</value></field></x></message>"

func formField(x *stream.Element, v string) string {
	for _, f := range x.Children() {
		if f.Get("var") == v {
			return f.ChildText("jabber:x:data", "value")
		}
	}
	return ""
}

func moderated(t *testing.T, c *modtest.Client) {
	t.Helper()
	if r := iq(t, c, "set", room, "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"+
		"<field var='muc#roomconfig_moderatedroom'><value>1</value></field></x></query>"); r.Get("type") != "result" {
		t.Fatalf("moderated: %s", r)
	}
}

// TestVoiceRequest: in a moderated room a visitor's message is forbidden;
// a nick change keeps the visitor role (the 303 presence says so); the
// visitor's voice request reaches the moderators as an approval form
// naming the new nick (a second one right away is refused); a visitor
// cannot approve; the moderator's approval makes the visitor a
// participant, broadcast, who may then speak.
func TestVoiceRequest(t *testing.T) {
	d := start(t)
	alice, bob, carol := login(t, d, "alice"), login(t, d, "bob"), login(t, d, "carol")
	join(t, alice, room, "alice", "")
	moderated(t, alice)
	self, _ := join(t, bob, room, "bob", "")
	if item(self).Get("role") != "visitor" {
		t.Fatalf("bob in a moderated room: %s", self)
	}
	join(t, carol, room, "carol", "")
	alice.Sync()
	bob.Sync()

	bob.Sendf("<message to='%s' type='groupchat'><body>may I?</body></message>", room)
	if e := bob.Expect("error", isErrorMsg); modtest.ErrCond(e) != "forbidden" {
		t.Fatalf("visitor's message: %s", e)
	}

	// Nick change while a visitor.
	bob.Sendf("<presence to='%s/Robert'/>", room)
	p := alice.Expect("303", modtest.IsPresence("unavailable", room+"/bob"))
	if !codes(p)["303"] || item(p).Get("role") != "visitor" || item(p).Get("nick") != "Robert" {
		t.Fatalf("visitor's nick change presence: %s", p)
	}
	if p := alice.Expect("new nick", modtest.IsPresence("", room+"/Robert")); item(p).Get("role") != "visitor" {
		t.Fatalf("after the nick change: %s", p)
	}
	bob.Sync()
	carol.Sync()
	bob.Sendf("<message to='%s' type='groupchat'><body>now?</body></message>", room)
	if e := bob.Expect("error", isErrorMsg); modtest.ErrCond(e) != "forbidden" {
		t.Fatalf("visitor's message after a nick change: %s", e)
	}

	bob.Sendf(voiceRequest, room)
	req := alice.Expect("voice request", func(el *stream.Element) bool {
		return el.Local == "message" && el.Child("jabber:x:data", "x") != nil
	})
	x := req.Child("jabber:x:data", "x")
	if req.Get("from") != room || formField(x, "FORM_TYPE") != "http://jabber.org/protocol/muc#request" ||
		formField(x, "muc#roomnick") != "Robert" || formField(x, "muc#jid") != "bob@example.test/r" || formField(x, "muc#request_allow") != "0" {
		t.Fatalf("approval form: %s", req)
	}
	carol.Quiet("the voice request is for moderators only")
	bob.Sendf(voiceRequest, room)
	if e := bob.Expect("error", isErrorMsg); modtest.ErrCond(e) != "resource-constraint" {
		t.Fatalf("second request at once: %s", e)
	}
	alice.Quiet("one request reached the moderators")

	approve := "<message to='%s'><x xmlns='jabber:x:data' type='submit'>" +
		"<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>" +
		"<field var='muc#role'><value>participant</value></field>" +
		"<field var='muc#jid'><value>bob@example.test/r</value></field>" +
		"<field var='muc#roomnick'><value>Robert</value></field>" +
		"<field var='muc#request_allow'><value>true</value></field></x></message>"
	carol.Sendf(approve, room)
	if e := carol.Expect("error", isErrorMsg); modtest.ErrCond(e) != "not-allowed" {
		t.Fatalf("a visitor approves: %s", e)
	}
	alice.Sendf(approve, room)
	for _, c := range []*modtest.Client{alice, bob, carol} {
		p := c.Expect("voice granted", modtest.IsPresence("", room+"/Robert"))
		if item(p).Get("role") != "participant" {
			t.Fatalf("%s: after the approval: %s", c.JID, p)
		}
	}
	bob.Sendf("<message to='%s' type='groupchat'><body>thank you</body></message>", room)
	carol.Expect("bob speaks", isGroupchat("thank you"))
	if !strings.Contains(alice.Expect("bob speaks", isGroupchat("thank you")).Get("from"), "/Robert") {
		t.Fatal("from")
	}
}

// TestVoiceRequestIgnoredWithVoice: a participant asking for voice has it
// already: the moderators are not bothered.
func TestVoiceRequestIgnoredWithVoice(t *testing.T) {
	d := start(t)
	alice, bob := login(t, d, "alice"), login(t, d, "bob")
	create(t, alice, room, "alice", "")
	join(t, bob, room, "bob", "")
	alice.Sync()
	bob.Sendf(voiceRequest, room)
	bob.Sync()
	alice.Quiet("a participant's voice request goes nowhere")
}
