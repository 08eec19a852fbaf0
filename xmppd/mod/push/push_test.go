package push_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/mod/push"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	ns       = "urn:xmpp:push:0"
	nsSM     = "urn:xmpp:sm:3"
	nsPubsub = "http://jabber.org/protocol/pubsub"
	nsData   = "jabber:x:data"
	alice    = "alice@" + xmpptest.Domain
	bob      = "bob@" + xmpptest.Domain
	appHost  = "push." + xmpptest.Domain
)

// appServer is an XEP-0357 app server on a second domain the test server
// hosts (until federation exists, the stand-in for a phone
// vendor's push service): it records every publish and answers with
// answer's error (nil: success).
type appServer struct {
	mu     sync.Mutex
	pubs   []*stream.Element
	from   []string
	got    chan struct{}
	answer error
}

func startApp(t *testing.T, d *xmppd.Daemon, host string, push bool) *appServer {
	t.Helper()
	a := &appServer{got: make(chan struct{}, 100)}
	svc := d.Server.AddService(host, "")
	if push {
		svc.AddIdentity(server.Identity{Category: "pubsub", Type: "push", Name: "App server"})
	}
	svc.HandleIQ("set", nsPubsub, "pubsub", func(st *server.Stanza) (*stream.Element, error) {
		a.mu.Lock()
		a.pubs = append(a.pubs, st.El.Copy())
		a.from = append(a.from, st.From.String())
		err := a.answer
		a.mu.Unlock()
		a.got <- struct{}{}
		return nil, err
	})
	return a
}

// next waits for the next publish and returns its pubsub element.
func (a *appServer) next(t *testing.T) *stream.Element {
	t.Helper()
	select {
	case <-a.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no publish reached the app server")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pubs[len(a.pubs)-1].Child(nsPubsub, "pubsub")
}

func (a *appServer) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pubs)
}

// summary is the notification form's fields.
func summary(t *testing.T, ps *stream.Element) map[string]string {
	t.Helper()
	n := ps.Child(nsPubsub, "publish").Child(nsPubsub, "item").Child(ns, "notification")
	if n == nil {
		t.Fatalf("no notification: %s", ps)
	}
	out := map[string]string{}
	for _, f := range n.Child(nsData, "x").Children() {
		out[f.Get("var")] = f.ChildText(nsData, "value")
	}
	return out
}

func enable(t *testing.T, c *modtest.Client, jid, node, extra string) *stream.Element {
	t.Helper()
	c.Sendf("<iq type='set' id='en'><enable xmlns='%s' jid='%s' node='%s'>%s</enable></iq>", ns, jid, node, extra)
	return c.Expect("enable answer", func(el *stream.Element) bool { return el.Get("id") == "en" })
}

const secret = "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s3cr3t</value></field></x>"

// waitFor polls cond (state another goroutine changes, with no event to
// wait on) for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// hibernate logs alice in on a resumable stream with push enabled, then
// kills the connection so that the session hibernates.
func hibernate(t *testing.T, d *xmppd.Daemon) {
	t.Helper()
	a := modtest.Login(t, d, "alice", "phone")
	a.Send("<enable xmlns='" + nsSM + "' resume='true'/>")
	if el := a.El(); el.Local != "enabled" {
		t.Fatal(el)
	}
	if r := enable(t, a, appHost, "n1", secret); r.Get("type") != "result" {
		t.Fatalf("enable: %s", r)
	}
	// Available: messages to the bare JID go to this session, not to
	// offline storage.
	a.Send("<presence/>")
	a.Expect("own presence", modtest.IsPresence("", alice+"/phone"))
	s := d.Server.Router.Session("alice", "phone")
	a.Raw.Close()
	waitFor(t, "hibernation", s.Detached)
}

func TestAdvertised(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := modtest.Login(t, d, "alice", "a")
	a.Send("<iq type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	r := a.Expect("disco", func(el *stream.Element) bool { return el.Get("id") == "d" })
	if !strings.Contains(r.String(), "var='"+ns+"'") {
		t.Fatalf("account does not advertise %s: %s", ns, r)
	}
}

// TestHibernatedSessionPushes: a message for a hibernating phone reaches
// its app server as a summary with count and sender, the client's
// publish-options, no body, from the account's bare JID.
func TestHibernatedSessionPushes(t *testing.T) {
	d := xmpptest.Start(t, nil)
	app := startApp(t, d, appHost, true)
	hibernate(t, d)
	b := modtest.Login(t, d, "bob", "b")
	b.Sendf("<message to='%s' type='chat'><body>secret words</body></message>", alice)
	ps := app.next(t)
	if p := ps.Child(nsPubsub, "publish"); p.Get("node") != "n1" {
		t.Fatalf("publish to node %q: %s", p.Get("node"), ps)
	}
	f := summary(t, ps)
	if f["FORM_TYPE"] != "urn:xmpp:push:summary" || f["message-count"] != "1" || f["last-message-sender"] != bob+"/b" {
		t.Fatalf("summary %v", f)
	}
	if strings.Contains(ps.String(), "secret words") {
		t.Fatalf("the body went to the app server: %s", ps)
	}
	if !strings.Contains(ps.Child(nsPubsub, "publish-options").String(), "s3cr3t") {
		t.Fatalf("publish-options not passed on: %s", ps)
	}
	app.mu.Lock()
	from := app.from[0]
	app.mu.Unlock()
	if from != alice {
		t.Fatalf("publish from %s, want %s", from, alice)
	}
	// Delivered to the session, not stored: the push came from the
	// hibernation path (bob's sync: his message has been routed).
	b.Sync()
	if !strings.Contains(fmt.Sprint(d.Server.Router.Session("alice", "phone").TakeUnacked()), "secret words") {
		t.Fatal("the message is not held for resumption")
	}
}

// TestOfflinePushes: the device's stream is gone; a message stored
// offline is pushed; a chat state alone is not.
func TestOfflinePushes(t *testing.T) {
	d := xmpptest.Start(t, nil)
	app := startApp(t, d, appHost, true)
	a := modtest.Login(t, d, "alice", "phone")
	if r := enable(t, a, appHost, "n1", ""); r.Get("type") != "result" {
		t.Fatalf("enable: %s", r)
	}
	a.Close()
	waitFor(t, "alice offline", func() bool { return len(d.Server.Router.Sessions("alice")) == 0 })
	b := modtest.Login(t, d, "bob", "b")
	b.Sendf("<message to='%s' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", alice)
	b.Sendf("<message to='%s/phone' type='chat'><body>hi</body></message>", alice)
	if f := summary(t, app.next(t)); f["message-count"] != "1" {
		t.Fatalf("summary %v", f)
	}
	b.Sync()
	if n := app.count(); n != 1 {
		t.Fatalf("%d publishes, want 1 (a chat state wakes nobody)", n)
	}
	if got := push.Registrations(d.Server, "alice"); len(got) != 1 {
		t.Fatalf("registrations %v", got)
	}
}

// TestRateLimited: a burst gives one publish at once and one summary at
// the end of the interval counting the whole burst.
func TestRateLimited(t *testing.T) {
	old := push.MinInterval
	push.MinInterval = 300 * time.Millisecond
	defer func() { push.MinInterval = old }()
	d := xmpptest.Start(t, nil)
	app := startApp(t, d, appHost, true)
	a := modtest.Login(t, d, "alice", "phone")
	enable(t, a, appHost, "n1", "")
	a.Close()
	waitFor(t, "alice offline", func() bool { return len(d.Server.Router.Sessions("alice")) == 0 })
	b := modtest.Login(t, d, "bob", "b")
	start := time.Now()
	for i := range 5 {
		b.Sendf("<message to='%s' type='chat'><body>m%d</body></message>", alice, i)
	}
	if f := summary(t, app.next(t)); f["message-count"] != "1" {
		t.Fatalf("first summary %v", f)
	}
	if f := summary(t, app.next(t)); f["message-count"] != "5" {
		t.Fatalf("second summary %v", f)
	}
	if el := time.Since(start); el < push.MinInterval {
		t.Fatalf("second publish after %v, before the interval", el)
	}
	if n := app.count(); n != 2 {
		t.Fatalf("%d publishes, want 2", n)
	}
}

// TestAppServerErrorDisables: an unreachable app server (for now) keeps
// the registration; item-not-found from the app server removes it, and
// the next message publishes nothing.
func TestAppServerErrorDisables(t *testing.T) {
	old := push.MinInterval
	push.MinInterval = 50 * time.Millisecond
	defer func() { push.MinInterval = old }()
	d := xmpptest.Start(t, nil)
	app := startApp(t, d, appHost, true)
	a := modtest.Login(t, d, "alice", "phone")
	enable(t, a, appHost, "n1", "")
	a.Close()
	waitFor(t, "alice offline", func() bool { return len(d.Server.Router.Sessions("alice")) == 0 })
	b := modtest.Login(t, d, "bob", "b")

	app.mu.Lock()
	app.answer = server.ErrRemoteNotFound
	app.mu.Unlock()
	b.Sendf("<message to='%s' type='chat'><body>zero</body></message>", alice)
	app.next(t)
	app.mu.Lock()
	app.answer = server.ErrItemNotFound
	app.mu.Unlock()
	b.Sendf("<message to='%s' type='chat'><body>one</body></message>", alice)
	app.next(t)
	waitFor(t, "registration removed", func() bool { return len(push.Registrations(d.Server, "alice")) == 0 })
	b.Sendf("<message to='%s' type='chat'><body>two</body></message>", alice)
	b.Sync()
	time.Sleep(2 * push.MinInterval) // a publish, if any, would be due by now
	if n := app.count(); n != 2 {
		t.Fatalf("%d publishes, want 2 (none after item-not-found)", n)
	}
}

// TestBadEnable: the bad-input cases, each with its error; a JID that
// answers disco#info without a pubsub/push identity, or does not answer
// (no such host), loses the registration it was given.
func TestBadEnable(t *testing.T) {
	d := xmpptest.Start(t, nil)
	startApp(t, d, "nopush."+xmpptest.Domain, false)
	a := modtest.Login(t, d, "alice", "a")
	for _, c := range []struct{ jid, node, cond string }{
		{"", "n", "jid-malformed"},
		{"@@", "n", "jid-malformed"},
		{appHost, "", "bad-request"},
		{xmpptest.Domain, "n", "not-acceptable"},
		{alice + "/other", "n", "not-acceptable"},
	} {
		r := enable(t, a, c.jid, c.node, "")
		if r.Get("type") != "error" || modtest.ErrCond(r) != c.cond {
			t.Errorf("enable jid=%q node=%q: %s, want %s", c.jid, c.node, r, c.cond)
		}
	}
	a.Sendf("<iq type='set' id='x' to='%s'><enable xmlns='%s' jid='%s' node='n'/></iq>", bob, ns, appHost)
	if r := a.Expect("answer", func(el *stream.Element) bool { return el.Get("id") == "x" }); modtest.ErrCond(r) != "forbidden" {
		t.Errorf("enable on another account: %s", r)
	}
	for _, j := range []string{"nopush." + xmpptest.Domain, "nowhere.invalid", bob + "/x"} {
		if r := enable(t, a, j, "n", ""); r.Get("type") != "result" {
			t.Fatalf("enable %s: %s", j, r)
		}
	}
	waitFor(t, "non-push registrations removed", func() bool { return len(push.Registrations(d.Server, "alice")) == 0 })
	if len(push.Registrations(d.Server, "alice")) != 0 {
		t.Fatal(push.Registrations(d.Server, "alice"))
	}
}

// TestDisableAndLimits: disable one node, then all of a JID; at most
// MaxPerAccount registrations; all gone with the account.
func TestDisableAndLimits(t *testing.T) {
	d := xmpptest.Start(t, nil)
	startApp(t, d, appHost, true)
	a := modtest.Login(t, d, "alice", "a")
	for i := range push.MaxPerAccount {
		if r := enable(t, a, appHost, fmt.Sprint("n", i), ""); r.Get("type") != "result" {
			t.Fatalf("enable %d: %s", i, r)
		}
	}
	if r := enable(t, a, appHost, "one-too-many", ""); modtest.ErrCond(r) != "resource-constraint" {
		t.Fatalf("enable past the limit: %s", r)
	}
	if r := enable(t, a, appHost, "n0", ""); r.Get("type") != "result" {
		t.Fatalf("re-enable: %s", r)
	}
	a.Sendf("<iq type='set' id='d1'><disable xmlns='%s' jid='%s' node='n0'/></iq>", ns, appHost)
	a.Expect("disable", func(el *stream.Element) bool { return el.Get("id") == "d1" && el.Get("type") == "result" })
	if n := len(push.Registrations(d.Server, "alice")); n != push.MaxPerAccount-1 {
		t.Fatalf("%d registrations after disabling one", n)
	}
	a.Sendf("<iq type='set' id='d2'><disable xmlns='%s' jid='%s'/></iq>", ns, appHost)
	a.Expect("disable all", func(el *stream.Element) bool { return el.Get("id") == "d2" && el.Get("type") == "result" })
	if n := len(push.Registrations(d.Server, "alice")); n != 0 {
		t.Fatalf("%d registrations after disabling the JID", n)
	}
	enable(t, a, appHost, "n", "")
	if err := d.Server.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	if got := push.Registrations(d.Server, "alice"); len(got) != 0 {
		t.Fatalf("registrations of a deleted account: %v", got)
	}
}

// TestRegistrationSurvivesRestart: registrations are on disk; after a
// restart a message for the offline account still reaches the app server.
func TestRegistrationSurvivesRestart(t *testing.T) {
	var opts xmppd.Options
	d := xmpptest.Start(t, func(o *xmppd.Options) { opts = *o })
	first := startApp(t, d, appHost, true)
	a := modtest.Login(t, d, "alice", "phone")
	if r := enable(t, a, appHost, "n1", secret); r.Get("type") != "result" {
		t.Fatalf("enable: %s", r)
	}
	// The app server has answered the probe (its disco#info) before the
	// server goes down: the registration stands.
	b0 := modtest.Login(t, d, "bob", "b")
	a.Close()
	waitFor(t, "alice offline", func() bool { return len(d.Server.Router.Sessions("alice")) == 0 })
	b0.Sendf("<message to='%s' type='chat'><body>before</body></message>", alice)
	first.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	d2, err := xmppd.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d2.Shutdown(ctx)
	})
	app := startApp(t, d2, appHost, true)
	b := modtest.Login(t, d2, "bob", "b")
	b.Sendf("<message to='%s' type='chat'><body>after the restart</body></message>", alice)
	ps := app.next(t)
	if f := summary(t, ps); f["message-count"] != "1" || !strings.Contains(ps.String(), "s3cr3t") {
		t.Fatalf("after restart: %s", ps)
	}
}

// TestTwoAppServers: an account with devices on two app servers; a message
// stored offline reaches both.
func TestTwoAppServers(t *testing.T) {
	d := xmpptest.Start(t, nil)
	one := startApp(t, d, appHost, true)
	two := startApp(t, d, "push2."+xmpptest.Domain, true)
	a := modtest.Login(t, d, "alice", "phone")
	enable(t, a, appHost, "phone", "")
	enable(t, a, "push2."+xmpptest.Domain, "tablet", "")
	a.Close()
	waitFor(t, "alice offline", func() bool { return len(d.Server.Router.Sessions("alice")) == 0 })
	b := modtest.Login(t, d, "bob", "b")
	b.Sendf("<message to='%s' type='chat'><body>to both</body></message>", alice)
	if n := one.next(t).Child(nsPubsub, "publish").Get("node"); n != "phone" {
		t.Fatalf("first app server: node %s", n)
	}
	if n := two.next(t).Child(nsPubsub, "publish").Get("node"); n != "tablet" {
		t.Fatalf("second app server: node %s", n)
	}
}

// TestGoneDeviceWhileOtherOnline: the phone's stream is gone, the desktop
// is online: the desktop gets the message and the phone is woken. While
// the phone is connected it is not.
func TestGoneDeviceWhileOtherOnline(t *testing.T) {
	d := xmpptest.Start(t, nil)
	app := startApp(t, d, appHost, true)
	desk := modtest.Login(t, d, "alice", "desk")
	desk.Send("<presence/>")
	desk.Expect("own presence", modtest.IsPresence("", alice+"/desk"))
	phone := modtest.Login(t, d, "alice", "phone")
	enable(t, phone, appHost, "n1", "")
	b := modtest.Login(t, d, "bob", "b")
	b.Sendf("<message to='%s' type='chat'><body>phone is here</body></message>", alice)
	desk.Expect("message", func(el *stream.Element) bool { return el.Local == "message" })
	b.Sync()
	if n := app.count(); n != 0 {
		t.Fatalf("%d publishes for a connected device", n)
	}
	phone.Close()
	waitFor(t, "phone gone", func() bool { return d.Server.Router.Session("alice", "phone") == nil })
	b.Sendf("<message to='%s' type='chat'><body>phone is gone</body></message>", alice)
	desk.Expect("message", func(el *stream.Element) bool {
		return el.Local == "message" && el.ChildText(stream.NSClient, "body") == "phone is gone"
	})
	if f := summary(t, app.next(t)); f["message-count"] != "1" {
		t.Fatalf("summary %v", f)
	}
}

// TestCountAfreshAfterResume: a phone that hibernated, was woken and
// resumed starts counting from one again the next time it sleeps.
func TestCountAfreshAfterResume(t *testing.T) {
	old := push.MinInterval
	push.MinInterval = 0 // not the rate limit under test
	defer func() { push.MinInterval = old }()
	d := xmpptest.Start(t, nil)
	app := startApp(t, d, appHost, true)
	a := modtest.Login(t, d, "alice", "phone")
	a.Send("<enable xmlns='" + nsSM + "' resume='true'/>")
	id := a.El().Get("id")
	enable(t, a, appHost, "n1", "")
	a.Send("<presence/>")
	a.Expect("own presence", modtest.IsPresence("", alice+"/phone"))
	s := d.Server.Router.Session("alice", "phone")
	a.Raw.Close()
	waitFor(t, "hibernation", s.Detached)
	b := modtest.Login(t, d, "bob", "b")
	b.Sendf("<message to='%s' type='chat'><body>one</body></message>", alice)
	if f := summary(t, app.next(t)); f["message-count"] != "1" {
		t.Fatalf("summary %v", f)
	}
	// The phone comes back (no new presence, as after a resumption).
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	c.Auth("SCRAM-SHA-256", "alice", "alice-pw")
	c.Open()
	c.Send("<resume xmlns='" + nsSM + "' previd='" + id + "' h='0'/>")
	if el := c.El(); el.Local != "resumed" {
		t.Fatalf("resume: %s", el)
	}
	b.Sendf("<message to='%s' type='chat'><body>while back</body></message>", alice)
	b.Sync()
	c.Raw.Close()
	waitFor(t, "hibernation again", s.Detached)
	b.Sendf("<message to='%s' type='chat'><body>two</body></message>", alice)
	if f := summary(t, app.next(t)); f["message-count"] != "1" {
		t.Fatalf("after resumption: summary %v, want a count from 1", f)
	}
}

// TestBlockedSenderWakesNobody: a message the member blocked (XEP-0191)
// is refused before push looks at it.
func TestBlockedSenderWakesNobody(t *testing.T) {
	d := xmpptest.Start(t, nil)
	app := startApp(t, d, appHost, true)
	hibernate(t, d)
	// alice blocks bob from another resource.
	desk := modtest.Login(t, d, "alice", "desk")
	desk.Sendf("<iq type='set' id='bl'><block xmlns='urn:xmpp:blocking'><item jid='%s'/></block></iq>", bob)
	if r := desk.Expect("block", func(el *stream.Element) bool { return el.Get("id") == "bl" }); r.Get("type") != "result" {
		t.Fatalf("block: %s", r)
	}
	b := modtest.Login(t, d, "bob", "b")
	b.Sendf("<message to='%s' type='chat' id='x'><body>let me in</body></message>", alice)
	b.Expect("bounce", func(el *stream.Element) bool { return el.Get("id") == "x" && el.Get("type") == "error" })
	// Someone not blocked: the first publish is for this one.
	if err := d.Store.CreateAccount("carol", "carol-pw", false); err != nil {
		t.Fatal(err)
	}
	c := modtest.Login(t, d, "carol", "c")
	c.Sendf("<message to='%s' type='chat'><body>hello</body></message>", alice)
	if f := summary(t, app.next(t)); f["last-message-sender"] != "carol@"+xmpptest.Domain+"/c" || f["message-count"] != "1" {
		t.Fatalf("first publish %v: the blocked message woke the phone", f)
	}
}
