package blocking_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/blocking"
	"github.com/hearthchat/hearth/xmppd/mod/internal/modtest"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const ns = blocking.NS

var seq atomic.Uint64

// iq sends an iq and returns its answer.
func iq(c *modtest.Client, typ, to, payload string) *stream.Element {
	c.T.Helper()
	r, _ := iqBefore(c, typ, to, payload)
	return r
}

// iqBefore sends an iq and returns its answer and what came before it.
func iqBefore(c *modtest.Client, typ, to, payload string) (*stream.Element, []*stream.Element) {
	c.T.Helper()
	id := "q" + strconv.FormatUint(seq.Add(1), 10)
	if to != "" {
		to = " to='" + to + "'"
	}
	c.Send("<iq type='" + typ + "' id='" + id + "'" + to + ">" + payload + "</iq>")
	var before []*stream.Element
	for range 100 {
		el := c.El()
		if el.Local == "iq" && el.Get("id") == id {
			return el, before
		}
		before = append(before, el)
	}
	c.T.Fatalf("%s: no answer to %s", c.JID, id)
	return nil, nil
}

// result sends an iq, fails unless it succeeds, and returns the answer
// and what arrived before it (pushes, presence the change caused).
func result(t *testing.T, c *modtest.Client, typ, payload string) (*stream.Element, []*stream.Element) {
	t.Helper()
	r, before := iqBefore(c, typ, "", payload)
	if r.Get("type") != "result" {
		t.Fatalf("%s: %s: want result, got %s", c.JID, payload, r)
	}
	return r, before
}

// find returns the first of els that pred accepts, failing if none does.
func find(t *testing.T, what string, els []*stream.Element, pred func(*stream.Element) bool) *stream.Element {
	t.Helper()
	for _, el := range els {
		if pred(el) {
			return el
		}
	}
	t.Fatalf("no %s among %v", what, els)
	return nil
}

// list asks for the block list (which makes c interested in pushes).
func list(t *testing.T, c *modtest.Client) []string {
	t.Helper()
	r, _ := result(t, c, "get", "<blocklist xmlns='"+ns+"'/>")
	bl := r.Child(ns, "blocklist")
	if bl == nil {
		t.Fatalf("no blocklist in %s", r)
	}
	var out []string
	for _, it := range bl.Children() {
		out = append(out, it.Get("jid"))
	}
	return out
}

func items(jids ...string) string {
	var b strings.Builder
	for _, j := range jids {
		fmt.Fprintf(&b, "<item jid='%s'/>", j)
	}
	return b.String()
}

// block blocks jids and returns what arrived at c before the result.
func block(t *testing.T, c *modtest.Client, jids ...string) []*stream.Element {
	t.Helper()
	_, before := result(t, c, "set", "<block xmlns='"+ns+"'>"+items(jids...)+"</block>")
	return before
}

func online(t *testing.T, d *xmppd.Daemon, user, res string) *modtest.Client {
	t.Helper()
	c := modtest.Login(t, d, user, res)
	c.Send("<presence/>")
	c.Sync()
	return c
}

func drain(cs ...*modtest.Client) {
	for _, c := range cs {
		c.Sync()
	}
}

func isMsg(id string) func(*stream.Element) bool {
	return func(el *stream.Element) bool { return el.Local == "message" && el.Get("id") == id }
}

func isPush(op string) func(*stream.Element) bool {
	return func(el *stream.Element) bool {
		return el.Local == "iq" && el.Get("type") == "set" && el.Child(ns, op) != nil
	}
}

func pushed(el *stream.Element, op string) []string {
	var out []string
	for _, it := range el.Child(ns, op).Children() {
		out = append(out, it.Get("jid"))
	}
	return out
}

func TestAdvertised(t *testing.T) {
	d := xmpptest.Start(t, nil)
	if f := d.Server.Features(server.ToServer); !slices.Contains(f, ns) {
		t.Fatalf("%s not advertised: %v", ns, f)
	}
}

// TestBlockAndUnblock: the list, pushes to the resources that asked for
// it (only those), and what a block refuses in each direction.
func TestBlockAndUnblock(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a1 := online(t, d, "alice", "one")
	a2 := online(t, d, "alice", "two")
	a3 := online(t, d, "alice", "three") // never asks for the list
	b := online(t, d, "bob", "b")
	drain(a1, a2, a3, b)
	if l := list(t, a1); len(l) != 0 {
		t.Fatalf("new list %v", l)
	}
	list(t, a2)

	before := block(t, a1, "bob@example.test", "spam.example")
	for _, p := range []*stream.Element{find(t, "push to the requester", before, isPush("block")), a2.Expect("block push", isPush("block"))} {
		if got := pushed(p, "block"); !slices.Equal(got, []string{"bob@example.test", "spam.example"}) {
			t.Fatalf("%s: push %v", p.Get("to"), got)
		}
	}
	a3.Quiet("no push for a resource that never asked for the list")
	if l := list(t, a3); !slices.Equal(l, []string{"bob@example.test", "spam.example"}) {
		t.Fatalf("list %v", l)
	}

	// Bob's message bounces with service-unavailable and reaches nobody.
	b.Send("<message to='alice@example.test' type='chat' id='m1'><body>hi</body></message>")
	if e := b.Expect("bounce", isMsg("m1")); e.Get("type") != "error" || modtest.ErrCond(e) != "service-unavailable" {
		t.Fatalf("bob got %s", e)
	}
	b.Send("<message to='alice@example.test/one' type='chat' id='m2'><body>hi</body></message>")
	if e := b.Expect("bounce", isMsg("m2")); modtest.ErrCond(e) != "service-unavailable" {
		t.Fatalf("bob got %s", e)
	}
	// A headline (what his server's PEP sends) vanishes without an error.
	b.Send("<message to='alice@example.test' type='headline' id='h1'><body>news</body></message>")
	b.Quiet("no error for a blocked headline")
	// His iqs too, to the account and to a resource.
	if r := iq(b, "get", "alice@example.test/one", "<ping xmlns='urn:xmpp:ping'/>"); modtest.ErrCond(r) != "service-unavailable" {
		t.Fatalf("iq to blocker's resource: %s", r)
	}
	if r := iq(b, "get", "alice@example.test", "<query xmlns='http://jabber.org/protocol/disco#info'/>"); modtest.ErrCond(r) != "service-unavailable" {
		t.Fatalf("iq to blocker's account: %s", r)
	}
	// Alice cannot reach him either: not-acceptable with <blocked/>.
	a1.Send("<message to='bob@example.test/b' type='chat' id='m3'><body>hi</body></message>")
	e := a1.Expect("refusal", isMsg("m3"))
	if modtest.ErrCond(e) != "not-acceptable" || e.Child(stream.NSClient, "error").Child(blocking.NSErrors, "blocked") == nil {
		t.Fatalf("alice got %s", e)
	}
	if r := iq(a1, "get", "bob@example.test/b", "<ping xmlns='urn:xmpp:ping'/>"); modtest.ErrCond(r) != "not-acceptable" {
		t.Fatalf("iq to blocked: %s", r)
	}
	// A whole domain and its subdomains.
	a1.Send("<message to='x@muc.spam.example' type='chat' id='m4'><body>hi</body></message>")
	if e := a1.Expect("refusal", isMsg("m4")); modtest.ErrCond(e) != "not-acceptable" {
		t.Fatalf("subdomain of a blocked domain: %s", e)
	}
	// Modules that write to sessions directly (PEP) ask the server.
	for j, want := range map[string]bool{"bob@example.test/x": true, "bob@example.test": true, "x.spam.example": true,
		"carol@example.test": false, "alice@example.test/two": false} {
		if got := d.Server.Blocks("alice", jid.MustParse(j)); got != want {
			t.Errorf("server.Blocks(alice, %s) = %v, want %v", j, got, want)
		}
	}
	drain(a1, a2, a3)
	b.Quiet("nothing of alice's reached bob")
	for _, c := range []*modtest.Client{a1, a2, a3} {
		c.Quiet("nothing of bob's reached alice")
	}

	// The own account and server stay reachable even if the domain is
	// blocked.
	block(t, a1, "example.test")
	drain(a1, a2)
	if l := list(t, a1); len(l) != 3 {
		t.Fatalf("list %v", l)
	}
	a1.Send("<message to='alice@example.test/two' type='chat' id='self'><body>me</body></message>")
	a2.Expect("own message", isMsg("self"))

	// Unblock one, then all: pushes say so and bob gets through.
	_, before = result(t, a1, "set", "<unblock xmlns='"+ns+"'>"+items("bob@example.test")+"</unblock>")
	for _, p := range []*stream.Element{find(t, "unblock push", before, isPush("unblock")), a2.Expect("unblock push", isPush("unblock"))} {
		if got := pushed(p, "unblock"); !slices.Equal(got, []string{"bob@example.test"}) {
			t.Fatalf("unblock push %v", got)
		}
	}
	_, before = result(t, a1, "set", "<unblock xmlns='"+ns+"'/>")
	for _, p := range []*stream.Element{find(t, "unblock-all push", before, isPush("unblock")), a2.Expect("unblock-all push", isPush("unblock"))} {
		if got := pushed(p, "unblock"); len(got) != 0 {
			t.Fatalf("unblock-all push %v", got)
		}
	}
	if l := list(t, a1); len(l) != 0 {
		t.Fatalf("after unblock all: %v", l)
	}
	b.Send("<message to='alice@example.test/one' type='chat' id='m5'><body>hi</body></message>")
	a1.Expect("bob's message after unblocking", isMsg("m5"))
}

// TestPresenceCut: blocking makes each side unavailable to the other at
// once and keeps later presence apart; unblocking brings it back.
func TestPresenceCut(t *testing.T) {
	d := xmpptest.Start(t, nil)
	if err := d.Server.Contacts().Befriend("alice", "bob", ""); err != nil {
		t.Fatal(err)
	}
	a := online(t, d, "alice", "a")
	b := online(t, d, "bob", "b")
	drain(a, b)

	before := block(t, a, "bob@example.test")
	if p := b.Expect("alice gone", modtest.IsPresence("unavailable", "alice@example.test/a")); p.Get("to") != "bob@example.test" {
		t.Fatalf("unavailable %s", p)
	}
	find(t, "bob hidden", before, modtest.IsPresence("unavailable", "bob@example.test/b"))
	drain(a, b)

	// Later presence does not cross, either way.
	a.Send("<presence><show>away</show></presence>")
	b.Send("<presence><show>dnd</show></presence>")
	a.Send("<presence to='bob@example.test' type='probe'/>")
	a2 := online(t, d, "alice", "late") // its probe of bob gets nothing
	drain(a, b)
	b.Quiet("no presence of alice's")
	for _, c := range []*modtest.Client{a, a2} {
		for _, el := range c.Sync() {
			if el.Local == "presence" && strings.HasPrefix(el.Get("from"), "bob@") {
				t.Fatalf("%s got bob's presence %s", c.JID, el)
			}
		}
	}

	_, before = result(t, a, "set", "<unblock xmlns='"+ns+"'>"+items("bob@example.test")+"</unblock>")
	b.Expect("alice back", modtest.IsPresence("", "alice@example.test/a"))
	find(t, "bob back", before, modtest.IsPresence("", "bob@example.test/b"))
}

// TestMalformed: bad items are refused with the stanza errors XEP-0191
// and RFC 6120 name, and nothing is stored.
func TestMalformed(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := online(t, d, "alice", "a")
	for _, tc := range []struct{ payload, cond string }{
		{"<block xmlns='" + ns + "'/>", "bad-request"},
		{"<block xmlns='" + ns + "'><item/></block>", "bad-request"},
		{"<block xmlns='" + ns + "'><other jid='x@example.test'/></block>", "bad-request"},
		{"<block xmlns='" + ns + "'><item jid='ok@example.test'/><item jid='@bad'/></block>", "jid-malformed"},
		{"<block xmlns='" + ns + "'><item jid=''/></block>", "jid-malformed"},
		{"<unblock xmlns='" + ns + "'><item jid='a@b@c'/></unblock>", "jid-malformed"},
	} {
		if r := iq(a, "set", "", tc.payload); modtest.ErrCond(r) != tc.cond {
			t.Errorf("%s: got %s, want %s", tc.payload, r, tc.cond)
		}
	}
	if l := list(t, a); len(l) != 0 {
		t.Fatalf("stored after refusals: %v", l)
	}
	// Another account's list is not ours to read or change.
	if r := iq(a, "get", "bob@example.test", "<blocklist xmlns='"+ns+"'/>"); modtest.ErrCond(r) == "" {
		t.Fatalf("read bob's list: %s", r)
	}
}

// TestCap: a member trying to block 100,000 addresses stops at MaxItems
// (one request that large is not-acceptable; filling up in chunks ends
// in resource-constraint), charged to the account's budget; other
// members are unaffected.
func TestCap(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := online(t, d, "alice", "a")
	b := online(t, d, "bob", "b")
	jids := func(from, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("spam%d@spam.example", from+i)
		}
		return out
	}
	if r := iq(a, "set", "", "<block xmlns='"+ns+"'>"+items(jids(0, blocking.MaxItems+1)...)+"</block>"); modtest.ErrCond(r) != "not-acceptable" {
		t.Fatalf("one request over the cap: %s", r)
	}
	const chunk = 250
	refused := -1
	for i := 0; i < 100_000; i += chunk {
		r := iq(a, "set", "", "<block xmlns='"+ns+"'>"+items(jids(i, chunk)...)+"</block>")
		if r.Get("type") == "error" {
			if modtest.ErrCond(r) != "resource-constraint" {
				t.Fatalf("at %d: %s", i, r)
			}
			refused = i
			break
		}
	}
	if refused != blocking.MaxItems {
		t.Fatalf("refused at %d, want %d", refused, blocking.MaxItems)
	}
	if l := list(t, a); len(l) != blocking.MaxItems {
		t.Fatalf("list holds %d", len(l))
	}
	u, err := d.Store.Usage("alice")
	if err != nil {
		t.Fatal(err)
	}
	if u[blocking.Kind].Items != blocking.MaxItems || u[blocking.Kind].Bytes <= 0 {
		t.Fatalf("charged %+v", u[blocking.Kind])
	}
	// Freed space is usable again.
	result(t, a, "set", "<unblock xmlns='"+ns+"'>"+items(jids(0, 1)...)+"</unblock>")
	block(t, a, "last@spam.example")
	// Bob is untouched.
	b.Send("<message to='alice@example.test/a' type='chat' id='ok'><body>hi</body></message>")
	a.Expect("bob's message", isMsg("ok"))
	block(t, b, "x@spam.example")
}

// TestHundredThousandInOneRequest: one block request with 100,000 items
// is over the stanza limits (stream.PostAuthLimits) long before the list
// sees it: that session ends with a stream error, nothing is stored, and
// the account's other session and other members carry on.
func TestHundredThousandInOneRequest(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := online(t, d, "alice", "a")
	other := online(t, d, "alice", "other")
	b := online(t, d, "bob", "b")
	var req strings.Builder
	req.WriteString("<iq type='set' id='huge'><block xmlns='" + ns + "'>")
	for i := range 100_000 {
		fmt.Fprintf(&req, "<item jid='spam%d@spam.example'/>", i)
	}
	req.WriteString("</block></iq>")
	go a.C.Write([]byte(req.String())) // the server stops reading part-way
	a.StreamError("policy-violation")
	if l := list(t, other); len(l) != 0 {
		t.Fatalf("stored from a refused request: %d items", len(l))
	}
	b.Send("<message to='alice@example.test/other' type='chat' id='ok'><body>hi</body></message>")
	other.Expect("bob's message", isMsg("ok"))
}

// TestRestartAndDeletion: a list survives a restart, and goes with the
// account.
func TestRestartAndDeletion(t *testing.T) {
	dir := state.Dir(t.TempDir())
	start := func() *xmppd.Daemon {
		d, err := xmppd.Start(xmppd.Options{State: dir, Domain: xmpptest.Domain, C2S: "127.0.0.1:0", C2STLS: "127.0.0.1:0",
			Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	stop := func(d *xmppd.Daemon) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	}
	d := start()
	for _, u := range []string{"alice", "bob"} {
		if err := d.Store.CreateAccount(u, u+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	a := online(t, d, "alice", "a")
	block(t, a, "bob@example.test")
	stop(d)

	d = start()
	defer func() { stop(d) }()
	a = online(t, d, "alice", "a")
	if l := list(t, a); !slices.Equal(l, []string{"bob@example.test"}) {
		t.Fatalf("after restart: %v", l)
	}
	b := online(t, d, "bob", "b")
	b.Send("<message to='alice@example.test' type='chat' id='m'><body>hi</body></message>")
	if e := b.Expect("bounce", isMsg("m")); modtest.ErrCond(e) != "service-unavailable" {
		t.Fatalf("after restart bob got %s", e)
	}

	if err := d.Server.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	err := d.Store.View(func(tx *bolt.Tx) error {
		if bk := tx.Bucket([]byte("blocklist")); bk != nil {
			return bk.ForEach(func(k, _ []byte) error { return fmt.Errorf("left behind: %q", k) })
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Store.CreateAccount("alice", "alice-pw", false); err != nil {
		t.Fatal(err)
	}
	b.Send("<message to='alice@example.test' type='chat' id='m2'><body>hi</body></message>")
	b.Quiet("a new alice blocks nobody (stored for her, no bounce)")
	a = online(t, d, "alice", "a")
	if l := list(t, a); len(l) != 0 {
		t.Fatalf("new account's list: %v", l)
	}
}
