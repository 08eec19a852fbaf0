package private_test

import (
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
)

func TestPrivate(t *testing.T) {
	d := xmpptest.Start(t, nil)
	alice := iqtest.Login(t, d, "alice", "r")
	bob := iqtest.Login(t, d, "bob", "r")
	aliceJID := "alice@" + iqtest.Domain
	q := func(inner string) string { return "<query xmlns='jabber:iq:private'>" + inner + "</query>" }
	const marks = "<storage xmlns='storage:bookmarks'><conference jid='family@groups.example.test' autojoin='true'/></storage>"
	const prefs = "<prefs xmlns='urn:example:prefs'><theme>dark</theme></prefs>"

	for _, tc := range []struct {
		name          string
		c             *iqtest.Client
		typ, to, body string
		cond          string
		// check: the stored child's name and the text/attribute that proves it came back
		wantChild, wantAttr string
	}{
		{"get before set: the empty element", alice, "get", "", q("<storage xmlns='storage:bookmarks'/>"), "", "storage", ""},
		{"set two namespaces at once", alice, "set", "", q(marks + prefs), "", "", ""},
		{"get back", alice, "get", "", q("<storage xmlns='storage:bookmarks'/>"), "", "storage", "family@groups.example.test"},
		{"get the other", alice, "get", aliceJID, q("<prefs xmlns='urn:example:prefs'/>"), "", "prefs", ""},
		{"reserved jabber: namespace", alice, "set", "", q("<query xmlns='jabber:iq:roster'/>"), "not-acceptable", "", ""},
		{"reserved, get", alice, "get", "", q("<x xmlns='jabber:x:data'/>"), "not-acceptable", "", ""},
		{"unqualified child is jabber:iq:private", alice, "set", "", q("<foo/>"), "not-acceptable", "", ""},
		{"no child", alice, "set", "", q(""), "not-acceptable", "", ""},
		{"two namespaces in one get", alice, "get", "", q("<a xmlns='urn:a'/><b xmlns='urn:b'/>"), "bad-request", "", ""},
		{"other user reads", bob, "get", aliceJID, q("<storage xmlns='storage:bookmarks'/>"), "forbidden", "", ""},
		{"other user writes", bob, "set", aliceJID, q(marks), "forbidden", "", ""},
		{"other user's get of own data is separate", bob, "get", "", q("<storage xmlns='storage:bookmarks'/>"), "", "storage", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.IQ(tc.typ, tc.to, tc.body)
			if got := iqtest.Cond(r); got != tc.cond {
				t.Fatalf("condition %q, want %q: %s", got, tc.cond, r)
			}
			if tc.wantChild == "" {
				return
			}
			data := r.FirstChild().FirstChild()
			if data == nil || data.Local != tc.wantChild {
				t.Fatalf("answer %s", r)
			}
			conf := data.Child("storage:bookmarks", "conference")
			switch {
			case tc.wantAttr != "" && (conf == nil || conf.Get("jid") != tc.wantAttr):
				t.Errorf("stored data lost: %s", r)
			case tc.wantAttr == "" && tc.wantChild == "storage" && conf != nil:
				t.Errorf("got data that should not be there: %s", r)
			case tc.wantChild == "prefs" && data.ChildText("urn:example:prefs", "theme") != "dark":
				t.Errorf("prefs lost: %s", r)
			}
		})
	}
}
