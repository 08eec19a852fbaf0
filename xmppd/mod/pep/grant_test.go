package pep_test

import (
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/pep"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	nodeAvatar = "urn:xmpp:avatar:metadata"
	nodeOnSub  = "urn:t:onsub"
	nodeNever  = "urn:t:never"
)

// TestLastItemOnGrant: when alice approves bob's presence subscription,
// bob's resource that asked +notify gets alice's last items right away
// (on_sub_and_presence and on_sub nodes, not never), without sending
// presence again; a circle's Befriend does the same for carol.
func TestLastItemOnGrant(t *testing.T) {
	d := xmpptest.Start(t, nil)
	alice, bob := iqtest.Login(t, d, "alice", "a"), iqtest.Login(t, d, "bob", "b")
	alice.Result("set", "", publish(nodeAvatar, "pic", "<metadata xmlns='urn:xmpp:avatar:metadata'/>", ""))
	alice.Result("set", "", publish(nodeOnSub, "s", "<x xmlns='urn:t'/>", openOpts(field("pubsub#send_last_published_item", "on_sub"))))
	alice.Result("set", "", publish(nodeNever, "n", "<x xmlns='urn:t'/>", openOpts(field("pubsub#send_last_published_item", "never"))))
	feats := []string{nodeAvatar + "+notify", nodeOnSub + "+notify", nodeNever + "+notify"}
	online(t, bob, "v1", feats...)
	noEvent(t, bob, nodeAvatar) // a stranger: nothing yet

	aj := "alice@" + iqtest.Domain
	bob.Send("<presence type='subscribe' to='" + aj + "'/>")
	bob.IQ("get", "", "<ping xmlns='urn:xmpp:ping'/>") // the request is stored
	alice.Send("<presence type='subscribed' to='bob@" + iqtest.Domain + "'/>")
	got := map[string]string{}
	for range 60 {
		el := bob.El()
		if ev := el.Child(pep.NSEvent, "event"); ev != nil && el.Get("from") == aj {
			n := ev.FirstChild().Get("node")
			got[n] = ev.FirstChild().Child(pep.NSEvent, "item").Get("id")
			if n == nodeNever {
				t.Fatalf("last item of a send_last never node: %s", el)
			}
		}
		if got[nodeAvatar] != "" && got[nodeOnSub] != "" {
			break
		}
	}
	if got[nodeAvatar] != "pic" || got[nodeOnSub] != "s" {
		t.Fatalf("bob's last items after the grant: %v", got)
	}
	noEvent(t, bob, nodeNever)

	// Befriend (the admin pages' circles) grants both ways at once.
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	carol := iqtest.Login(t, d, "carol", "c")
	online(t, carol, "v1", feats...)
	synced(carol)
	if err := d.Server.Contacts().Befriend("alice", "carol", "Rowers"); err != nil {
		t.Fatal(err)
	}
	if it := event(t, carol, nodeAvatar).Child(pep.NSEvent, "item"); it == nil || it.Get("id") != "pic" {
		t.Fatalf("carol after Befriend: %v", it)
	}
	// Befriending again grants nothing new and sends nothing again.
	if err := d.Server.Contacts().Befriend("alice", "carol", "Rowers"); err != nil {
		t.Fatal(err)
	}
	noEvent(t, carol, nodeAvatar)
}

// synced returns once the server has read what each client sent so far
// (the caps answer of online included): a ping's answer.
func synced(cs ...*iqtest.Client) {
	for _, c := range cs {
		c.Result("get", "", "<ping xmlns='urn:xmpp:ping'/>")
	}
}

// TestRosterGroupAccess: a node with the roster access model is read,
// notified and sent on presence only to contacts in an allowed group of
// the owner's roster; others get not-authorized with
// not-in-roster-group. The groups come from publish-options and node
// configuration.
func TestRosterGroupAccess(t *testing.T) {
	d, alice, bob := start(t) // bob: alice's contact in no group
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	if err := d.Server.Contacts().Befriend("alice", "carol", "Family"); err != nil {
		t.Fatal(err)
	}
	carol := iqtest.Login(t, d, "carol", "c")
	const node = "urn:t:family"
	online(t, bob, "v1", node+"+notify")
	online(t, carol, "v1", node+"+notify")
	synced(bob, carol)
	roster := openOpts(field("pubsub#access_model", "roster") + field("pubsub#roster_groups_allowed", "Family"))
	alice.Result("set", "", publish(node, "1", "<x xmlns='urn:t'>family only</x>", roster))

	if it := event(t, carol, node).Child(pep.NSEvent, "item"); it == nil || it.Get("id") != "1" {
		t.Fatalf("carol's notification: %v", it)
	}
	noEvent(t, bob, node)
	aj := "alice@" + iqtest.Domain
	if got := carol.Result("get", aj, items(node, "")).FirstChild(); len(got.Children()) != 1 {
		t.Fatalf("carol's items: %s", got)
	}
	r := bob.IQ("get", aj, items(node, ""))
	if iqtest.Cond(r) != "not-authorized" || r.Child(stream.NSClient, "error").Child(pep.NS+"#errors", "not-in-roster-group") == nil {
		t.Fatalf("bob's retrieve: %s", r)
	}
	if strings.Contains(r.String(), "family only") {
		t.Fatalf("the refusal carries the item: %s", r)
	}
	// Last item on presence: carol's new resource gets it, bob's not.
	carol2 := iqtest.Login(t, d, "carol", "c2")
	online(t, carol2, "v2", node+"+notify")
	event(t, carol2, node)
	bob2 := iqtest.Login(t, d, "bob", "b2")
	online(t, bob2, "v2", node+"+notify")
	noEvent(t, bob2, node)
	// disco#items lists the node to carol only.
	discoItems := "<query xmlns='http://jabber.org/protocol/disco#items'/>"
	if got := carol.Result("get", aj, discoItems); !strings.Contains(got.String(), node) {
		t.Fatalf("carol's disco#items: %s", got)
	}
	if got := bob.Result("get", aj, discoItems); strings.Contains(got.String(), node) {
		t.Fatalf("bob's disco#items: %s", got)
	}
	// publish-options with other groups: the node is configured otherwise.
	other := openOpts(field("pubsub#access_model", "roster") + field("pubsub#roster_groups_allowed", "Friends"))
	if r := alice.IQ("set", "", publish(node, "2", "<x xmlns='urn:t'/>", other)); !strings.Contains(r.String(), "precondition-not-met") {
		t.Fatalf("publish with other groups: %s", r)
	}

	// alice files bob under Friends and allows Friends in the node's
	// configuration: bob is in.
	alice.Result("set", "", "<query xmlns='jabber:iq:roster'><item jid='bob@"+iqtest.Domain+"'><group>Friends</group></item></query>")
	alice.Result("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='"+node+"'><x xmlns='jabber:x:data' type='submit'>"+
		"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>"+
		"<field var='pubsub#roster_groups_allowed'><value>Family</value><value>Friends</value></field></x></configure></pubsub>")
	if got := bob.Result("get", aj, items(node, "")).FirstChild(); len(got.Children()) != 1 {
		t.Fatalf("bob's items once in Friends: %s", got)
	}
	// The same groups in another order meet the precondition.
	both := openOpts(field("pubsub#access_model", "roster") +
		"<field var='pubsub#roster_groups_allowed'><value>Friends</value><value>Family</value><value>Friends</value></field>")
	alice.Result("set", "", publish(node, "3", "<x xmlns='urn:t'/>", both))
	event(t, bob, node)

	// A roster model with no group allowed lets nobody but the owner in.
	alice.Result("set", "", publish("urn:t:nogroup", "1", "<x xmlns='urn:t'/>", openOpts(field("pubsub#access_model", "roster"))))
	if c := iqtest.Cond(carol.IQ("get", aj, items("urn:t:nogroup", ""))); c != "not-authorized" {
		t.Fatalf("roster model without groups: %q", c)
	}
	alice.Result("get", "", items("urn:t:nogroup", ""))
}

// TestOfferBookmark: server.OfferBookmark puts the room into the
// account's bookmarks (notified to its +notify resources, in the
// XEP-0048 copy) once: a bookmark the member removed stays removed, and
// one the member has stays as the member made it.
func TestOfferBookmark(t *testing.T) {
	d, alice, bob := start(t)
	online(t, alice, "v1", pep.NodeBookmarks+"+notify")
	synced(alice)
	room := "everyone@groups." + iqtest.Domain
	offer := func(user string) {
		server.OfferBookmark.Fire(d.Server, server.Bookmark{User: user, Room: room, Name: "Everyone", Autojoin: true})
	}
	offer("alice")
	ev := event(t, alice, pep.NodeBookmarks).Child(pep.NSEvent, "item")
	if ev == nil || ev.Get("id") != room {
		t.Fatalf("alice's bookmark event: %v", ev)
	}
	got := alice.Result("get", "", items(pep.NodeBookmarks, "")).FirstChild()
	if len(got.Children()) != 1 {
		t.Fatalf("alice's bookmarks: %s", got)
	}
	c := got.FirstChild().Child(pep.NodeBookmarks, "conference")
	if got.FirstChild().Get("id") != room || c == nil || c.Get("autojoin") != "true" || c.Get("name") != "Everyone" {
		t.Fatalf("alice's bookmark: %s", got)
	}
	// XEP-0402 §3's node configuration (whitelist: bob cannot read it).
	if cond := iqtest.Cond(bob.IQ("get", "alice@"+iqtest.Domain, items(pep.NodeBookmarks, ""))); cond == "" {
		t.Fatal("bob read alice's bookmarks")
	}
	priv := alice.Result("get", "", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>")
	if !strings.Contains(priv.String(), room) {
		t.Fatalf("XEP-0048 copy: %s", priv)
	}
	// Offered again (every start does): nothing changes, nothing notified.
	offer("alice")
	noEvent(t, alice, pep.NodeBookmarks)
	// alice removes it; the next offer does not bring it back.
	alice.Result("set", "", "<pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='"+pep.NodeBookmarks+"' notify='true'><item id='"+room+"'/></retract></pubsub>")
	offer("alice")
	if got := alice.Result("get", "", items(pep.NodeBookmarks, "")).FirstChild(); len(got.Children()) != 0 {
		t.Fatalf("the removed bookmark came back: %s", got)
	}

	// bob has his own bookmark of the room (no autojoin): it stays.
	mine := "<conference xmlns='urn:xmpp:bookmarks:1' name='Club'/>"
	bob.Result("set", "", publish(pep.NodeBookmarks, room, mine, openOpts(field("pubsub#access_model", "whitelist")+field("pubsub#max_items", "max"))))
	offer("bob")
	got = bob.Result("get", "", items(pep.NodeBookmarks, "")).FirstChild()
	if len(got.Children()) != 1 || got.FirstChild().FirstChild().Get("name") != "Club" || got.FirstChild().FirstChild().Get("autojoin") != "" {
		t.Fatalf("bob's own bookmark changed: %s", got)
	}
}

// TestBlockedContactHearsNothing: once bob blocks alice (XEP-0191), no
// PEP event passes between them either way — not on publish, not as last
// item when bob comes online again — though they are still subscribed to
// each other. PEP writes to sessions directly, past the blocking module's
// routing hooks.
func TestBlockedContactHearsNothing(t *testing.T) {
	d := xmpptest.Start(t, nil)
	if err := d.Server.Contacts().Befriend("alice", "bob", ""); err != nil {
		t.Fatal(err)
	}
	alice, bob := iqtest.Login(t, d, "alice", "a"), iqtest.Login(t, d, "bob", "b")
	online(t, alice, "v1", nodeAvatar+"+notify")
	online(t, bob, "v1", nodeAvatar+"+notify")
	synced(alice, bob)
	alice.Result("set", "", publish(nodeAvatar, "before", "<metadata xmlns='urn:xmpp:avatar:metadata'/>", ""))
	event(t, bob, nodeAvatar) // friends hear each other

	bob.Result("set", "", "<block xmlns='urn:xmpp:blocking'><item jid='alice@"+iqtest.Domain+"'/></block>")
	synced(alice, bob)
	alice.Result("set", "", publish(nodeAvatar, "after", "<metadata xmlns='urn:xmpp:avatar:metadata'/>", ""))
	noEvent(t, bob, nodeAvatar)
	bob.Result("set", "", publish(nodeAvatar, "bobs", "<metadata xmlns='urn:xmpp:avatar:metadata'/>", ""))
	noEvent(t, alice, nodeAvatar)
	online(t, bob, "v2", nodeAvatar+"+notify") // new caps: last items again
	bob.Send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
	for range 50 {
		el := bob.El()
		if el.Local == "iq" && el.Get("id") == "sync" {
			return
		}
		if el.Child(pep.NSEvent, "event") != nil && el.Get("from") == "alice@"+iqtest.Domain {
			t.Fatalf("bob got alice's last item after blocking her: %s", el)
		}
	}
	t.Fatal("no answer to bob's ping")
}
