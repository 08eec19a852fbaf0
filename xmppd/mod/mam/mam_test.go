package mam

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const domain = "example.test"

// rig is a server with the archive and accounts alice, bob and carol. No
// other module runs: a message for an account is caught at the end of
// MessageBare/MessageFull (delivered), query results likewise (results).
type rig struct {
	t   *testing.T
	srv *server.Server
	m   *mod

	mu        sync.Mutex
	clock     time.Time
	delivered []*stream.Element
	results   []*stream.Element
	sess      map[string]*session.Session
}

func newRig(t *testing.T) *rig {
	t.Helper()
	// The tests wait for each message's commit; gathering batches would
	// only make them slow.
	old := store.CommitInterval
	store.CommitInterval = 0
	t.Cleanup(func() { store.CommitInterval = old })
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := server.New(domain, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := st.CreateAccount(u, u+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	r := &rig{t: t, srv: srv, clock: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), sess: map[string]*session.Session{}}
	Register(srv)
	r.m = of(srv)
	r.m.stopped.Store(true) // ticks are driven by the tests
	r.m.now = func() time.Time {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.clock
	}
	catch := func(st *server.Stanza) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if st.El.Child(NS, "result") != nil {
			r.results = append(r.results, st.El)
		} else {
			r.delivered = append(r.delivered, st.El)
		}
		return true
	}
	srv.Hook(server.MessageFull, 0, catch)
	srv.Hook(server.MessageBare, 0, catch)
	return r
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.clock = r.clock.Add(d)
	r.mu.Unlock()
}

// session is a bound session of user whose output is discarded.
func (r *rig) session(user string) *session.Session {
	if s := r.sess[user]; s != nil {
		return s
	}
	srvEnd, client := net.Pipe()
	go io.Copy(io.Discard, client)
	r.t.Cleanup(func() { client.Close() })
	s := session.New(srvEnd, jid.MustParse(user+"@"+domain+"/res"), stream.NSClient)
	r.srv.Router.Bind(s)
	r.sess[user] = s
	return s
}

// send has from's client send raw (a message) through the server.
func (r *rig) send(from, raw string) {
	r.t.Helper()
	el, err := stream.ParseElement([]byte(raw))
	if err != nil {
		r.t.Fatal(err)
	}
	s := r.session(from)
	r.srv.FromClient(s, el)
	// The archive commit completes in the background (server.Commit):
	// the tests look at storage once it is done.
	if !r.srv.WaitCommits(s, 10*time.Second) {
		r.t.Fatal("archive commit never finished")
	}
}

func (r *rig) chat(from, to, body string) *stream.Element {
	r.t.Helper()
	r.mu.Lock()
	n := len(r.delivered)
	r.mu.Unlock()
	r.send(from, fmt.Sprintf("<message xmlns='jabber:client' type='chat' to='%s@%s'><body>%s</body></message>", to, domain, body))
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.delivered) != n+1 {
		r.t.Fatalf("%s → %s %q: %d delivered, want 1", from, to, body, len(r.delivered)-n)
	}
	return r.delivered[n]
}

// iq runs an iq from user's session to its own account and returns the
// result payload or the error condition, and the result messages.
func (r *rig) iq(user, typ, payload string) (*stream.Element, string, []*stream.Element) {
	r.t.Helper()
	r.mu.Lock()
	r.results = nil
	r.mu.Unlock()
	el, err := stream.ParseElement([]byte(payload))
	if err != nil {
		r.t.Fatal(err)
	}
	st := &server.Stanza{El: stream.New(stream.NSClient, "iq", "type", typ, "id", "q").Add(el),
		From: jid.MustParse(user + "@" + domain + "/res"), To: jid.MustParse(user + "@" + domain)}
	h := map[string]func(*server.Stanza) (*stream.Element, error){
		"get query": r.m.form, "set query": r.m.query, "get prefs": r.m.getPrefs, "set prefs": r.m.setPrefs,
		"get metadata": r.m.metadata,
	}[typ+" "+el.Local]
	res, herr := h(st)
	r.mu.Lock()
	out := r.results
	r.mu.Unlock()
	if herr != nil {
		return nil, herr.Error(), out
	}
	return res, "", out
}

type pageResult struct {
	bodies      []string
	ids         []string
	first, last string
	index       string // <first index=…>, "" if none
	count       string // <count/>, "" if none
	complete    bool
	cond        string
}

func (r *rig) query(user, form, rsm string, extra ...string) pageResult {
	r.t.Helper()
	q := "<query xmlns='urn:xmpp:mam:2' queryid='qq'>"
	if form != "" {
		q += "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>" + form + "</x>"
	}
	if rsm != "" {
		q += "<set xmlns='http://jabber.org/protocol/rsm'>" + rsm + "</set>"
	}
	q += strings.Join(extra, "") + "</query>"
	fin, cond, msgs := r.iq(user, "set", q)
	var p pageResult
	if cond != "" {
		if len(msgs) > 0 {
			r.t.Errorf("query failed with %s but sent %d results", cond, len(msgs))
		}
		p.cond = cond
		return p
	}
	for _, m := range msgs {
		res := m.Child(NS, "result")
		if res.Get("queryid") != "qq" {
			r.t.Errorf("result without the queryid: %s", m)
		}
		fw := res.Child(nsForward, "forwarded")
		inner := fw.Child(stream.NSClient, "message")
		if fw.Child(nsDelay, "delay") == nil || inner == nil {
			r.t.Fatalf("result without delay or message: %s", m)
		}
		if idFor(inner, user+"@"+domain) != res.Get("id") {
			r.t.Errorf("archived message's stanza-id is not the result id: %s", m)
		}
		p.bodies = append(p.bodies, inner.ChildText(stream.NSClient, "body"))
		p.ids = append(p.ids, res.Get("id"))
	}
	p.complete = fin.Get("complete") == "true"
	if set := fin.Child(nsRSM, "set"); set != nil {
		p.first, p.last = set.ChildText(nsRSM, "first"), set.ChildText(nsRSM, "last")
		if f := set.Child(nsRSM, "first"); f != nil {
			p.index = f.Get("index")
		}
		p.count = set.ChildText(nsRSM, "count")
	}
	return p
}

// usage is user's archive charge once the journal is merged (records
// are charged when merged, see charge).
func usage(t *testing.T, srv *server.Server, user string) store.Usage {
	t.Helper()
	if err := of(srv).merge(); err != nil {
		t.Fatal(err)
	}
	var u store.Usage
	srv.Store.View(func(tx *bolt.Tx) error { u = store.UsageOf(tx, user, Kind); return nil })
	return u
}

func TestArchivesBothSidesWithStanzaID(t *testing.T) {
	r := newRig(t)
	if !slices.Contains(r.srv.Features(server.ToAccount), NS) || !slices.Contains(r.srv.Features(server.ToAccount), NSExtended) {
		t.Fatalf("account features %v lack %s and #extended", r.srv.Features(server.ToAccount), NS)
	}
	got := r.chat("bob", "alice", "hello")
	id := idFor(got, "alice@"+domain)
	if _, ok := ParseID(id); !ok {
		t.Fatalf("delivered copy has no stanza-id by alice: %s", got)
	}
	if idFor(got, "bob@"+domain) != "" {
		t.Errorf("the recipient's copy carries the sender's archive id: %s", got)
	}
	a := r.query("alice", "", "")
	if !slices.Equal(a.bodies, []string{"hello"}) || a.ids[0] != id || !a.complete {
		t.Fatalf("alice's archive: %+v, want [hello] with id %s, complete", a, id)
	}
	if b := r.query("bob", "", ""); !slices.Equal(b.bodies, []string{"hello"}) {
		t.Fatalf("bob's archive (sent message): %+v", b)
	}
	if u := usage(t, r.srv, "alice"); u.Items != 1 || u.Bytes == 0 {
		t.Errorf("alice's archive charge %+v, want 1 item", u)
	}

	// Not archived: a bare chat state, no-store, no-permanent-store,
	// headline. A forged stanza-id from the client is stripped and does
	// not keep the message out of the archive.
	for _, raw := range []string{
		"<message xmlns='jabber:client' type='chat' to='alice@example.test'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
		"<message xmlns='jabber:client' type='chat' to='alice@example.test'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>",
		"<message xmlns='jabber:client' type='chat' to='alice@example.test'><body>y</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>",
		"<message xmlns='jabber:client' type='headline' to='alice@example.test'><body>z</body></message>",
	} {
		r.send("bob", raw)
	}
	r.send("bob", "<message xmlns='jabber:client' type='chat' to='alice@example.test'><body>forged</body><stanza-id xmlns='urn:xmpp:sid:0' by='alice@example.test' id='0000000000000001'/></message>")
	r.mu.Lock()
	last := r.delivered[len(r.delivered)-1]
	r.mu.Unlock()
	if fid := idFor(last, "alice@"+domain); fid == "0000000000000001" || fid == "" {
		t.Errorf("forged stanza-id kept (or no id of ours): %s", last)
	}
	a = r.query("alice", "", "")
	if !slices.Equal(a.bodies, []string{"hello", "forged"}) {
		t.Errorf("alice's archive %v, want [hello forged]", a.bodies)
	}
	// A store hint archives a message without a body.
	r.send("bob", "<message xmlns='jabber:client' to='alice@example.test'><store xmlns='urn:xmpp:hints'/><received xmlns='urn:xmpp:receipts' id='x'/></message>")
	if a = r.query("alice", "", ""); len(a.ids) != 3 {
		t.Errorf("store hint not archived: %v", a.bodies)
	}
	// To oneself: archived once.
	r.chat("carol", "carol", "note")
	if c := r.query("carol", "", ""); len(c.ids) != 1 {
		t.Errorf("a message to one's own account archived %d times", len(c.ids))
	}
}

func fill(r *rig, n int, from, to string) []string {
	var bodies []string
	for i := 1; i <= n; i++ {
		b := fmt.Sprintf("%s-m%d", from, i)
		r.chat(from, to, b)
		bodies = append(bodies, b)
		r.advance(time.Second)
	}
	return bodies
}

func TestPaging(t *testing.T) {
	r := newRig(t)
	want := fill(r, 120, "bob", "alice")
	// A query for a million: one clamped page, not complete.
	p := r.query("alice", "", "<max>1000000</max>")
	if len(p.ids) != MaxPage || p.complete || !slices.Equal(p.bodies, want[:50]) {
		t.Fatalf("max 1000000: %d results complete=%v; want the first %d, not complete", len(p.ids), p.complete, MaxPage)
	}
	if p.first != p.ids[0] || p.last != p.ids[49] {
		t.Errorf("first/last %s/%s, want %s/%s", p.first, p.last, p.ids[0], p.ids[49])
	}
	// A max beyond 63 bits is still clamped, not an error.
	if h := r.query("alice", "", "<max>99999999999999999999999999</max>"); len(h.ids) != MaxPage {
		t.Errorf("huge max: %d results (%s)", len(h.ids), h.cond)
	}
	// Forward through the whole archive.
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		rsm := "<max>50</max>"
		if after != "" {
			rsm += "<after>" + after + "</after>"
		}
		p := r.query("alice", "", rsm)
		all = append(all, p.bodies...)
		if p.complete {
			break
		}
		if pages > 5 {
			t.Fatal("never complete")
		}
		after = p.last
	}
	if !slices.Equal(all, want) {
		t.Fatalf("forward paging gave %d messages, not what was sent in order", len(all))
	}
	// Backward from the end: <before/> is the last page, in order.
	p = r.query("alice", "", "<max>50</max><before/>")
	if !slices.Equal(p.bodies, want[70:]) || p.complete {
		t.Fatalf("last page: %v complete=%v", p.bodies, p.complete)
	}
	p2 := r.query("alice", "", "<max>50</max><before>"+p.first+"</before>")
	p3 := r.query("alice", "", "<max>50</max><before>"+p2.first+"</before>")
	if !slices.Equal(p2.bodies, want[20:70]) || !slices.Equal(p3.bodies, want[:20]) || !p3.complete {
		t.Fatalf("backward paging: %d then %d (complete=%v)", len(p2.bodies), len(p3.bodies), p3.complete)
	}
	// flip-page: the same page, newest first.
	f := r.query("alice", "", "<max>10</max><before/>", "<flip-page/>")
	rev := slices.Clone(want[110:])
	slices.Reverse(rev)
	if !slices.Equal(f.bodies, rev) || f.first != f.ids[0] {
		t.Fatalf("flip-page: %v", f.bodies)
	}
	// max 0: no messages, not complete (there are some).
	if z := r.query("alice", "", "<max>0</max>"); len(z.ids) != 0 || z.complete {
		t.Errorf("max 0: %+v", z)
	}
}

func TestFilters(t *testing.T) {
	r := newRig(t)
	fill(r, 5, "bob", "alice")   // t0 … t0+4s
	fill(r, 5, "carol", "alice") // t0+5s …
	fill(r, 3, "alice", "bob")   // sent by alice
	all := r.query("alice", "", "")
	if len(all.ids) != 13 || !all.complete {
		t.Fatalf("alice has %d messages", len(all.ids))
	}
	if p := r.query("alice", "<field var='with'><value>carol@example.test</value></field>", ""); len(p.ids) != 5 || p.bodies[0] != "carol-m1" {
		t.Errorf("with carol: %v", p.bodies)
	}
	if p := r.query("alice", "<field var='with'><value>bob@example.test</value></field>", ""); len(p.ids) != 8 {
		t.Errorf("with bob (both directions): %v", p.bodies)
	}
	if p := r.query("alice", "<field var='with'><value>carol@example.test/res</value></field>", ""); len(p.ids) != 5 {
		t.Errorf("with carol's full JID: %v", p.bodies)
	}
	if p := r.query("alice", "<field var='with'><value>carol@example.test/other</value></field>", ""); len(p.ids) != 0 || !p.complete {
		t.Errorf("with another resource: %v", p.bodies)
	}
	start := time.Date(2026, 12, 1, 12, 0, 2, 0, time.UTC).Format(time.RFC3339)
	end := time.Date(2026, 12, 1, 12, 0, 6, 0, time.UTC).Format(time.RFC3339)
	if p := r.query("alice", "<field var='start'><value>"+start+"</value></field><field var='end'><value>"+end+"</value></field>", ""); !slices.Equal(p.bodies, []string{"bob-m3", "bob-m4", "bob-m5", "carol-m1", "carol-m2"}) {
		t.Errorf("start/end: %v", p.bodies)
	}
	if p := r.query("alice", "<field var='after-id'><value>"+all.ids[2]+"</value></field><field var='before-id'><value>"+all.ids[6]+"</value></field>", ""); !slices.Equal(p.bodies, []string{"bob-m4", "bob-m5", "carol-m1"}) {
		t.Errorf("after-id/before-id: %v", p.bodies)
	}
	if p := r.query("alice", "<field var='ids'><value>"+all.ids[9]+"</value><value>"+all.ids[1]+"</value></field>", ""); !slices.Equal(p.bodies, []string{"bob-m2", "carol-m5"}) || !p.complete {
		t.Errorf("ids: %v", p.bodies)
	}

	// Bad input: each its own error, nothing sent.
	nonsense := []string{"nonsense", "ffffffffffffffff", "0000000000000000", strings.Repeat("9", 5000), "&lt;&apos;&gt;", ""}
	for _, id := range nonsense[:5] {
		for _, q := range [][2]string{
			{"", "<after>" + id + "</after>"},
			{"", "<before>" + id + "</before>"},
			{"<field var='after-id'><value>" + id + "</value></field>", ""},
			{"<field var='before-id'><value>" + id + "</value></field>", ""},
			{"<field var='ids'><value>" + all.ids[0] + "</value><value>" + id + "</value></field>", ""},
		} {
			if p := r.query("alice", q[0], q[1]); p.cond != "item-not-found" {
				t.Errorf("id %.20q in %s%s: %q, want item-not-found", id, q[0], q[1], p.cond)
			}
		}
	}
	for _, c := range []struct{ form, rsm, want string }{
		{"", "<max>-1</max>", "bad-request"},
		{"", "<max>ten</max>", "bad-request"},
		{"", "<index>3</index>", "feature-not-implemented"},
		{"<field var='start'><value>yesterday</value></field>", "", "bad-request"},
		{"<field var='with'><value>@@</value></field>", "", "jid-malformed"},
		{"<field var='with'><value>a@b</value><value>c@d</value></field>", "", "bad-request"},
		{"<field var='colour'><value>red</value></field>", "", "bad-request"},
		{"<field var='ids'>" + strings.Repeat("<value>"+all.ids[0]+"</value>", 51) + "</field>", "", "not-acceptable"},
	} {
		if p := r.query("alice", c.form, c.rsm); p.cond != c.want {
			t.Errorf("%s%s: %q, want %s", c.form, c.rsm, p.cond, c.want)
		}
	}
	// Another account's archive.
	st := &server.Stanza{El: stream.New(stream.NSClient, "iq", "type", "set", "id", "x").Add(stream.New(NS, "query")),
		From: jid.MustParse("bob@example.test/res"), To: jid.MustParse("alice@example.test")}
	if _, err := r.m.query(st); err == nil || err.Error() != "forbidden" {
		t.Errorf("bob reading alice's archive: %v, want forbidden", err)
	}
	// The form lists the extended fields.
	form, _, _ := r.iq("alice", "get", "<query xmlns='urn:xmpp:mam:2'/>")
	for _, f := range []string{"with", "start", "end", "before-id", "after-id", "ids"} {
		if !strings.Contains(form.String(), "var='"+f+"'") {
			t.Errorf("form lacks %s: %s", f, form)
		}
	}
	// Metadata: first and last.
	md, _, _ := r.iq("alice", "get", "<metadata xmlns='urn:xmpp:mam:2'/>")
	if md.Child(NS, "start").Get("id") != all.ids[0] || md.Child(NS, "end").Get("id") != all.ids[12] {
		t.Errorf("metadata %s", md)
	}
}

func TestPrefs(t *testing.T) {
	r := newRig(t)
	res, cond, _ := r.iq("alice", "get", "<prefs xmlns='urn:xmpp:mam:2'/>")
	if cond != "" || res.Get("default") != "always" {
		t.Fatalf("default prefs: %v %s", res, cond)
	}
	if _, cond, _ := r.iq("alice", "set", "<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>"); cond != "bad-request" {
		t.Errorf("default=sometimes: %q", cond)
	}
	if _, cond, _ := r.iq("alice", "set", "<prefs xmlns='urn:xmpp:mam:2' default='always'><never><jid>@@</jid></never></prefs>"); cond != "bad-request" {
		t.Errorf("bad JID: %q", cond)
	}
	if _, cond, _ := r.iq("alice", "set", "<prefs xmlns='urn:xmpp:mam:2' default='never'><always><jid>carol@example.test</jid></always></prefs>"); cond != "" {
		t.Fatal(cond)
	}
	got := r.chat("bob", "alice", "not kept")
	if idFor(got, "alice@"+domain) != "" {
		t.Errorf("default never, yet a stanza-id: %s", got)
	}
	r.chat("carol", "alice", "kept")
	if p := r.query("alice", "", ""); !slices.Equal(p.bodies, []string{"kept"}) {
		t.Errorf("never + always carol: archive %v", p.bodies)
	}
	// Bob's own copy of what he sent follows bob's preferences.
	if p := r.query("bob", "", ""); !slices.Equal(p.bodies, []string{"not kept"}) {
		t.Errorf("bob's archive %v", p.bodies)
	}
	// roster: without a roster module nobody is a contact.
	r.iq("alice", "set", "<prefs xmlns='urn:xmpp:mam:2' default='roster'/>")
	r.chat("bob", "alice", "stranger")
	if p := r.query("alice", "", ""); len(p.bodies) != 1 {
		t.Errorf("roster default archived a stranger's message: %v", p.bodies)
	}
	res, _, _ = r.iq("alice", "get", "<prefs xmlns='urn:xmpp:mam:2'/>")
	if res.Get("default") != "roster" {
		t.Errorf("prefs now %s", res)
	}
}

func TestRetention(t *testing.T) {
	r := newRig(t)
	t0 := r.clock
	// 600 messages 40 days old for alice and bob each… (bob's are his
	// sent copies), then 3 recent ones.
	for i := range sweepRecords + 100 {
		r.chat("bob", "alice", fmt.Sprintf("old%d", i))
	}
	r.advance(39 * 24 * time.Hour)
	r.chat("carol", "alice", "recent1")
	r.chat("carol", "alice", "recent2")
	r.advance(24 * time.Hour)
	cutoff := timeID(r.m.now().Add(-DefaultRetention))
	if cutoff <= timeID(t0) {
		t.Fatal("test clock wrong")
	}
	n1, err := r.m.sweep(cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if n1 > sweepRecords {
		t.Fatalf("one tick deleted %d records, bound is %d", n1, sweepRecords)
	}
	total := n1
	for range 10 {
		n, err := r.m.sweep(cutoff)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n == 0 {
			break
		}
	}
	if total != 2*(sweepRecords+100) {
		t.Errorf("deleted %d expired records, want %d", total, 2*(sweepRecords+100))
	}
	if p := r.query("alice", "", ""); !slices.Equal(p.bodies, []string{"recent1", "recent2"}) {
		t.Errorf("alice's archive after retention: %v", p.bodies)
	}
	if u := usage(t, r.srv, "bob"); u != (store.Usage{}) {
		t.Errorf("bob's charge after his archive expired: %+v", u)
	}
	if u := usage(t, r.srv, "alice"); u.Items != 2 {
		t.Errorf("alice's charge %+v, want 2 items", u)
	}
	// A shorter configured retention applies at the next tick.
	SetRetention(r.srv, time.Hour)
	r.m.stopped.Store(false)
	r.m.sweepMu.Lock()
	cut := timeID(r.m.now().Add(-time.Duration(r.m.retention.Load())))
	r.m.sweepMu.Unlock()
	r.m.stopped.Store(true)
	if n, _ := r.m.sweep(cut); n != 4 { // alice's two and carol's sent copies
		t.Errorf("retention of one hour deleted %d, want 4", n)
	}
}

func TestCapEvictsOldest(t *testing.T) {
	r := newRig(t)
	old := archiveLimit
	archiveLimit = store.Limit{Bytes: 1 << 20, Items: 10}
	t.Cleanup(func() { archiveLimit = old })
	want := fill(r, 25, "bob", "alice")
	r.mergeAll() // the cap applies when the journal is merged (charge)
	p := r.query("alice", "", "")
	if !slices.Equal(p.bodies, want[15:]) {
		t.Errorf("at the cap the archive holds %v, want the newest 10", p.bodies)
	}
	if u := usage(t, r.srv, "alice"); u.Items != 10 {
		t.Errorf("charge %+v, want 10 items", u)
	}
}

func TestDeleteAccount(t *testing.T) {
	r := newRig(t)
	fill(r, 3, "bob", "alice")
	r.iq("alice", "set", "<prefs xmlns='urn:xmpp:mam:2' default='always'/>")
	if err := r.srv.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	r.srv.Store.View(func(tx *bolt.Tx) error {
		if f, l := bounds(tx, "alice"); f != 0 || l != 0 {
			t.Errorf("alice's archive still there after deletion")
		}
		if tx.Bucket(bucketPrefs).Get([]byte("alice")) != nil {
			t.Errorf("alice's prefs still there")
		}
		return nil
	})
	if p := r.query("bob", "", ""); len(p.ids) != 3 {
		t.Errorf("bob's archive lost %d of 3 with alice's account", 3-len(p.ids))
	}
}

// Ids stay unique and ordered when the clock stands still or moves back.
func TestIDsWhenClockMovesBack(t *testing.T) {
	r := newRig(t)
	r.chat("bob", "alice", "a")
	r.chat("bob", "alice", "b")
	r.advance(-time.Hour)
	r.chat("bob", "alice", "c")
	p := r.query("alice", "", "")
	if !slices.Equal(p.bodies, []string{"a", "b", "c"}) || !slices.IsSorted(p.ids) || len(slices.Compact(slices.Clone(p.ids))) != 3 {
		t.Fatalf("ids %v bodies %v", p.ids, p.bodies)
	}
}

// A stanza from elsewhere (another server, through Route) that carries a
// stanza-id claiming to be the recipient's archive is archived anyway,
// under an id of ours.
func TestForgedIDFromElsewhere(t *testing.T) {
	r := newRig(t)
	el, err := stream.ParseElement([]byte("<message xmlns='jabber:client' type='chat' from='eve@remote.example/x' to='alice@example.test'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='alice@example.test' id='00000000000000ff'/></message>"))
	if err != nil {
		t.Fatal(err)
	}
	r.srv.Route(el)
	p := r.query("alice", "", "")
	if !slices.Equal(p.bodies, []string{"hi"}) || p.ids[0] == "00000000000000ff" {
		t.Fatalf("archive after a forged id from elsewhere: %+v", p)
	}
	r.mu.Lock()
	got := r.delivered[len(r.delivered)-1]
	r.mu.Unlock()
	if idFor(got, "alice@"+domain) != p.ids[0] {
		t.Errorf("delivered %s, want the archive's id %s", got, p.ids[0])
	}
}

// BenchmarkPage50Of100k: one 50-message page from a 100,000-message
// archive (the benchmark figure): the newest page (RSM before),
// a page from the middle (after an id), and one filtered by with.
func BenchmarkPage50Of100k(b *testing.B) {
	t := &testing.T{}
	r := newRig(t)
	const n = 100_000
	base := timeID(r.clock)
	peers := []string{"bob@example.test/res", "carol@example.test/res"}
	for start := 0; start < n; start += 10_000 {
		err := r.srv.Store.Update(func(tx *bolt.Tx) error {
			for i := start; i < start+10_000; i++ {
				xml := fmt.Appendf(nil, "<message xmlns='jabber:client' type='chat' from='%s' to='alice@example.test'><body>message %d</body></message>", peers[i%2], i)
				if err := put(r.srv.Store, tx, entry{user: "alice", dir: dirIn, peer: peers[i%2], xml: xml}, base+uint64(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	mid := FormatID(base + n/2)
	for _, c := range []struct{ name, form, rsm string }{
		{"newest", "", "<max>50</max><before/>"},
		{"middle", "", "<max>50</max><after>" + mid + "</after>"},
		{"with", "<field var='with'><value>carol@example.test</value></field>", "<max>50</max><after>" + mid + "</after>"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				r.t = t
				p := r.query("alice", c.form, c.rsm)
				if len(p.ids) != 50 {
					b.Fatalf("%d results (%s)", len(p.ids), p.cond)
				}
			}
		})
	}
	// With a full journal not merged yet (mergeUserMessages of alice's,
	// as when one pair fills the archive in the bench, among
	// mergeMessages in all, the others between other accounts): every
	// query reads it too.
	err := r.srv.Store.Update(func(tx *bolt.Tx) error {
		q := newQueueLocal()
		others, own := int(mergeMessages.Load()-mergeUserMessages.Load()), int(mergeUserMessages.Load())
		for i := range others + own {
			es := []jEntry{{user: "alice", id: base + n + uint64(i), dir: dirIn, peer: peers[i%2]}}
			if i%(1+others/own) != 0 || i/(1+others/own) >= own {
				es = []jEntry{{user: "bob", id: base + n + uint64(i), dir: dirIn, peer: "carol@example.test/res"},
					{user: "carol", id: base + n + uint64(i), dir: dirOut, peer: "bob@example.test/res"}}
			}
			xml := fmt.Appendf(nil, "<message xmlns='jabber:client' type='chat'><body>journaled %d</body></message>", i)
			if err := journal(r.srv.Store, tx, es, xml, [2]int{}, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("newest-journal-full", func(b *testing.B) {
		for b.Loop() {
			r.t = t
			p := r.query("alice", "", "<max>50</max><before/>")
			if len(p.ids) != 50 {
				b.Fatalf("%d results (%s)", len(p.ids), p.cond)
			}
		}
	})
}

// The cap holds when many messages share one commit (their charge is
// made once per account at the end of the batch, evicting then).
func TestCapInOneBatch(t *testing.T) {
	r := newRig(t)
	old := archiveLimit
	archiveLimit = store.Limit{Bytes: 1 << 20, Items: 10}
	t.Cleanup(func() { archiveLimit = old })
	release, started := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	free := func() { released.Do(func() { close(release) }) }
	defer free() // a failure must not leave the store's writer waiting
	r.srv.Store.Enqueue(func(*bolt.Tx) error { once.Do(func() { close(started) }); <-release; return nil }, nil)
	<-started // the queue is busy: the 25 wait for the next commit together
	s := r.session("bob")
	var want []string
	for i := 1; i <= 25; i++ {
		b := fmt.Sprintf("b%d", i)
		want = append(want, b)
		el, _ := stream.ParseElement([]byte("<message xmlns='jabber:client' type='chat' to='alice@example.test'><body>" + b + "</body></message>"))
		r.srv.FromClient(s, el)
	}
	before := r.srv.Store.Commits()
	free()
	if !r.srv.WaitCommits(s, 10*time.Second) {
		t.Fatal("commits never finished")
	}
	// The held commit, then all 25 in one (not one each after a failed
	// batch).
	if n := r.srv.Store.Commits() - before; n != 2 {
		t.Errorf("%d commits, want 2", n)
	}
	r.mergeAll() // the cap applies when the journal is merged (charge)
	if p := r.query("alice", "", ""); !slices.Equal(p.bodies, want[15:]) {
		t.Errorf("at the cap, one batch of 25 left %v, want the newest 10", p.bodies)
	}
	for _, u := range []string{"alice", "bob"} {
		if got := usage(t, r.srv, u); got.Items != 10 {
			t.Errorf("%s's charge %+v, want 10 items", u, got)
		}
	}
}

// The peer a record keeps is the normalized JID whatever the client
// wrote (peerOf takes FromClient's normalized attribute): "with"
// filters find it.
func TestPeerNormalized(t *testing.T) {
	r := newRig(t)
	r.session("bob")
	r.send("alice", "<message xmlns='jabber:client' type='chat' to='BOB@"+strings.ToUpper(domain)+"/res'><body>shouting</body></message>")
	var peers []string
	r.srv.Store.View(func(tx *bolt.Tx) error {
		return newView(tx, "alice").each(func(rec record) error { peers = append(peers, rec.peer); return nil })
	})
	if len(peers) != 1 || peers[0] != "bob@"+domain+"/res" {
		t.Errorf("alice's record has peer %q, want bob@%s/res", peers, domain)
	}
	if p := r.query("alice", "<field var='with'><value>bob@"+domain+"</value></field>", ""); len(p.ids) != 1 {
		t.Errorf("with bob@%s finds %d of alice's 1", domain, len(p.ids))
	}
}

// The delivered copy is serialized once, stanza-id included, and the
// journal stores those bytes without it (sidSpan): the stored copy is the
// stanza without ids of ours, as before the one serialization served both.
func TestStoredCopyLeavesOutStanzaID(t *testing.T) {
	r := newRig(t)
	got := r.chat("bob", "alice", "one copy")
	if idFor(got, "alice@"+domain) == "" {
		t.Fatalf("delivered copy has no stanza-id: %s", got)
	}
	for _, user := range []string{"alice", "bob"} {
		n := 0
		r.srv.Store.View(func(tx *bolt.Tx) error {
			return EachTx(tx, user, func(rec Record) error {
				n++
				if strings.Contains(string(rec.XML), "stanza-id") || !strings.Contains(string(rec.XML), "<body>one copy</body>") {
					t.Errorf("%s's stored copy: %s", user, rec.XML)
				}
				return nil
			})
		})
		if n != 1 {
			t.Errorf("%s has %d records, want 1", user, n)
		}
	}
}

func TestSIDSpan(t *testing.T) {
	hex := []byte("0123456789abcdef")
	const sid = "<stanza-id xmlns='urn:xmpp:sid:0' id='0123456789abcdef' by='alice@example.test'/>"
	msg := "<message xmlns='jabber:client' to='alice@example.test'><body>hi</body>" + sid + "</message>"
	if got := sidSpan([]byte(msg), hex, "alice@example.test"); msg[got[0]:got[1]] != sid {
		t.Errorf("span %v is %q", got, msg[got[0]:got[1]])
	}
	for _, other := range []string{
		strings.Replace(msg, "by='alice", "by='bob", 1),                     // another by
		strings.Replace(msg, "id='0123", "id='f123", 1),                     // another id
		strings.Replace(msg, "<stanza-id xmlns", "<sid:stanza-id xmlns", 1), // written otherwise
	} {
		if got := sidSpan([]byte(other), hex, "alice@example.test"); got != [2]int{} {
			t.Errorf("%s: span %v, want none", other, got)
		}
	}
}
