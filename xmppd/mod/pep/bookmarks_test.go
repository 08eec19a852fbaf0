package pep_test

import (
	"testing"

	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/pep"
)

const legacyGet = "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>"

// TestBookmarksCompat: XEP-0402 bookmarks published with XEP-0402's
// options appear in XEP-0048 private storage, and a storage:bookmarks a
// legacy client stores becomes PEP items (new rooms published, dropped
// rooms retracted with notifications); <url/> bookmarks survive; the node
// is the owner's only.
func TestBookmarksCompat(t *testing.T) {
	d, alice, bob := start(t)
	alice2 := iqtest.Login(t, d, "alice", "a2")
	online(t, alice2, "b1", pep.NodeBookmarks+"+notify")
	opts := openOpts(field("pubsub#persist_items", "true") + field("pubsub#max_items", "max") +
		field("pubsub#send_last_published_item", "never") + field("pubsub#access_model", "whitelist"))
	alice.Result("set", "", publish(pep.NodeBookmarks, "tea@groups.example.test",
		"<conference xmlns='urn:xmpp:bookmarks:1' name='Tea' autojoin='true'><nick>al</nick></conference>", opts))
	event(t, alice2, pep.NodeBookmarks)
	st := alice.Result("get", "", legacyGet).FirstChild()
	c := st.Child("storage:bookmarks", "conference")
	if c == nil || c.Get("jid") != "tea@groups.example.test" || c.Get("autojoin") != "true" || c.Get("name") != "Tea" || c.ChildText("storage:bookmarks", "nick") != "al" {
		t.Fatalf("private storage after the PEP publish: %s", st)
	}

	// A legacy client drops Tea, adds Chess and a URL bookmark.
	alice.Result("set", "", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"+
		"<conference jid='chess@groups.example.test' name='Chess'><nick>al</nick><password>pw</password></conference>"+
		"<url name='Home' url='https://example.test/'/></storage></query>")
	seen := map[string]bool{}
	for range 2 {
		ev := event(t, alice2, pep.NodeBookmarks)
		if it := ev.Child(pep.NSEvent, "item"); it != nil {
			seen["item "+it.Get("id")] = true
		}
		if r := ev.Child(pep.NSEvent, "retract"); r != nil {
			seen["retract "+r.Get("id")] = true
		}
	}
	if !seen["item chess@groups.example.test"] || !seen["retract tea@groups.example.test"] {
		t.Fatalf("events: %v", seen)
	}
	got := alice.Result("get", "", items(pep.NodeBookmarks, "")).FirstChild()
	if len(got.Children()) != 1 || got.FirstChild().Get("id") != "chess@groups.example.test" ||
		got.FirstChild().FirstChild().ChildText(pep.NodeBookmarks, "password") != "pw" {
		t.Fatalf("PEP after the legacy set: %s", got)
	}
	// The next PEP change keeps the URL bookmark in private storage.
	alice.Result("set", "", publish(pep.NodeBookmarks, "tea@groups.example.test", "<conference xmlns='urn:xmpp:bookmarks:1' name='Tea'/>", opts))
	st = alice.Result("get", "", legacyGet).FirstChild()
	if st.Child("storage:bookmarks", "url") == nil || len(st.Children()) != 3 {
		t.Fatalf("private storage lost the URL: %s", st)
	}
	// Whitelist: bob may not read them, even as a contact.
	if c := iqtest.Cond(bob.IQ("get", "alice@"+iqtest.Domain, items(pep.NodeBookmarks, ""))); c != "not-allowed" {
		t.Fatalf("bob reads alice's bookmarks: %q", c)
	}
}
