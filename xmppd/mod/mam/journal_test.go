package mam

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// XEP-0059 count and index: the whole archive's count from the budget's
// item count (journaled records included), index on the first page.
func TestRSMCountAndIndex(t *testing.T) {
	r := newRig(t)
	want := fill(r, 7, "bob", "alice")
	r.chat("carol", "alice", "from carol")
	want = append(want, "from carol")
	for _, c := range []struct {
		name, form, rsm string
		count, index    string
		first           string // body of the first result
		n               int
	}{
		{"first page", "", "<max>3</max>", "8", "0", want[0], 3},
		{"last page", "", "<max>3</max><before/>", "8", "", want[5], 3}, // see query.go on slixmpp
		{"count only", "", "<max>0</max>", "8", "", "", 0},
		{"narrowed by with", "<field var='with'><value>carol@example.test</value></field>", "<max>3</max>", "", "", "from carol", 1},
	} {
		p := r.query("alice", c.form, c.rsm)
		if p.cond != "" || len(p.ids) != c.n || p.count != c.count || p.index != c.index || c.n > 0 && p.bodies[0] != c.first {
			t.Errorf("%s: %d results from %v, count %q index %q (%s); want %d from %q, count %q index %q",
				c.name, len(p.ids), p.bodies, p.count, p.index, p.cond, c.n, c.first, c.count, c.index)
		}
	}
	// A page after an id: count given, index not (it would need a walk).
	p := r.query("alice", "", "<max>3</max>")
	next := r.query("alice", "", "<max>3</max><after>"+p.last+"</after>")
	if next.count != "8" || next.index != "" || !slices.Equal(next.bodies, want[3:6]) {
		t.Errorf("page after %s: %v count %q index %q", p.last, next.bodies, next.count, next.index)
	}
	// Every record counted once, merged or not.
	r.mergeAll()
	r.chat("bob", "alice", "after the merge")
	if p := r.query("alice", "", "<max>0</max>"); p.count != "9" {
		t.Errorf("count after a merge and one more: %q, want 9", p.count)
	}
}

// The archive read through the journal and the segments agrees with a
// plain model of it, whatever was merged when: paging both ways, with
// and time filters, ids, bounds, records from before segments, records
// that reach the journal out of id order.
func TestJournalAndSegmentsAgree(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) { journalAgrees(t, seed) })
	}
}

func journalAgrees(t *testing.T, seed uint64) {
	r := newRig(t)
	rng := rand.New(rand.NewPCG(seed, 2))
	users := []string{"alice", "bob", "carol"}
	peers := []string{"x@remote.example/a", "y@remote.example/b", "bob@example.test/res"}
	model := map[string][]record{}
	next := uint64(1_700_000_000_000_000)
	// Records written before segments: one value per record, version 1.
	err := r.srv.Store.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketMsgs)
		if err != nil {
			return err
		}
		for i := range 30 {
			u, peer := users[i%3], peers[i%3]
			xml := fmt.Appendf(nil, "<message xmlns='jabber:client'><body>legacy %d</body></message>", i)
			next += 10
			if err := b.Put(recKey(u, next), encodeRecord(dirIn, peer, xml)); err != nil {
				return err
			}
			model[u] = append(model[u], record{id: next, dir: dirIn, peer: peer, xml: xml})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 40 {
		// A commit of a few messages, one party or two, some of them
		// older than what an earlier commit wrote.
		err := r.srv.Store.Update(func(tx *bolt.Tx) error {
			for range 1 + rng.IntN(40) {
				next += 1 + uint64(rng.IntN(3))
				id := next
				if rng.IntN(10) == 0 {
					id -= 5 // a slot the clock skipped: taken late
				}
				body := fmt.Sprintf("r%d-%d-%s", round, id, string(make([]byte, rng.IntN(900))))
				xml := []byte("<message xmlns='jabber:client'><body>" + body + "</body></message>")
				u := users[rng.IntN(3)]
				es := []jEntry{{user: u, id: id, dir: dirIn, peer: peers[rng.IntN(3)]}}
				if rng.IntN(2) == 0 {
					o := users[(slices.Index(users, u)+1)%3]
					es = append(es, jEntry{user: o, id: id, dir: dirOut, peer: peers[rng.IntN(3)]})
				}
				dup := false
				for _, e := range es {
					if slices.ContainsFunc(model[e.user], func(x record) bool { return x.id == e.id }) {
						dup = true
					}
				}
				if dup {
					continue
				}
				if err := journal(r.srv.Store, tx, es, xml, [2]int{}, nil); err != nil {
					return err
				}
				for _, e := range es {
					model[e.user] = append(model[e.user], record{id: e.id, dir: e.dir, peer: e.peer, xml: xml})
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		switch rng.IntN(3) {
		case 0:
			if err := r.m.merge(); err != nil {
				t.Fatal(err)
			}
		case 1: // a partial merge, as when the journal is long
			if err := r.srv.Store.Update(func(tx *bolt.Tx) error {
				_, _, err := mergeTx(tx, 1+rng.IntN(30), nil, nil)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		for _, u := range users {
			slices.SortFunc(model[u], func(a, b record) int { return cmpU64(a.id, b.id) })
			checkAgainstModel(t, r.srv.Store, u, model[u], rng)
		}
	}
}

func checkAgainstModel(t *testing.T, st *store.Store, user string, want []record, rng *rand.Rand) {
	t.Helper()
	err := st.View(func(tx *bolt.Tx) error {
		v := newView(tx, user)
		var all []record
		if err := v.each(func(r record) error { all = append(all, r); return nil }); err != nil {
			return err
		}
		if len(all) != len(want) {
			t.Fatalf("%s: %d records, want %d", user, len(all), len(want))
		}
		for i := range all {
			if all[i].id != want[i].id || all[i].peer != want[i].peer || string(all[i].xml) != string(want[i].xml) {
				t.Fatalf("%s: record %d is %d %s, want %d %s", user, i, all[i].id, all[i].peer, want[i].id, want[i].peer)
			}
		}
		if f, l := v.bounds(); len(want) > 0 && (f != want[0].id || l != want[len(want)-1].id) {
			t.Fatalf("%s: bounds %d..%d, want %d..%d", user, f, l, want[0].id, want[len(want)-1].id)
		}
		for range 20 {
			q := query{max: 1 + rng.IntN(MaxPage), maxBytes: pageBytes, last: rng.IntN(2) == 0}
			pick := func() uint64 { return want[rng.IntN(len(want))].id }
			if rng.IntN(2) == 0 {
				q.after = pick()
			}
			if rng.IntN(3) == 0 {
				q.before = pick()
			}
			if rng.IntN(3) == 0 {
				q.start = pick() - 1
			}
			if rng.IntN(4) == 0 {
				q.with, q.withFull = "x@remote.example", false
			}
			got, complete, err := v.page(q)
			if err != nil {
				return err
			}
			var sel []record
			for _, r := range want {
				if (q.after == 0 || r.id > q.after) && (q.before == 0 || r.id < q.before) && r.id >= q.start &&
					(q.with == "" || withMatches(r.peer, q.with, q.withFull)) {
					sel = append(sel, r)
				}
			}
			exp, expComplete := sel, true
			if len(sel) > q.max {
				expComplete = false
				if q.last {
					exp = sel[len(sel)-q.max:]
				} else {
					exp = sel[:q.max]
				}
			}
			ids := func(rs []record) []uint64 {
				out := []uint64{}
				for _, r := range rs {
					out = append(out, r.id)
				}
				return out
			}
			if !slices.Equal(ids(got), ids(exp)) || complete != expComplete {
				t.Fatalf("%s: query %+v gave %v complete=%v, want %v complete=%v", user, q, ids(got), complete, ids(exp), expComplete)
			}
			for i := range got {
				if string(got[i].xml) != string(exp[i].xml) {
					t.Fatalf("%s: query %+v: record %d's XML is %.60q, want %.60q", user, q, got[i].id, got[i].xml, exp[i].xml)
				}
			}
			id := pick()
			if !v.exists(id) || v.exists(id+1_000_000_000) {
				t.Fatalf("%s: exists(%d) wrong", user, id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// What was journaled and never merged (the server stopped, or was killed)
// is read after a restart and merged exactly once.
func TestJournalAfterRestart(t *testing.T) {
	old := mergeDelayNs.Load()
	mergeDelayNs.Store(int64(time.Hour)) // no merge before the "crash"
	t.Cleanup(func() { mergeDelayNs.Store(old) })
	dir := t.TempDir()
	open := func() (*store.Store, *server.Server) {
		st, err := store.Open(filepath.Join(dir, "db"))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(domain, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		Register(srv)
		of(srv).stopped.Store(true)
		return st, srv
	}
	st, _ := open()
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateAccount(u, "pw", false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 25 {
		err := st.Update(func(tx *bolt.Tx) error {
			return journal(st, tx, []jEntry{{user: "alice", id: uint64(1000 + i), dir: dirIn, peer: "bob@example.test/r"},
				{user: "bob", id: uint64(1000 + i), dir: dirOut, peer: "alice@example.test"}},
				[]byte("<message xmlns='jabber:client'><body>"+strconv.Itoa(i)+"</body></message>"), [2]int{}, nil)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	st.Close() // never merged
	st, srv := open()
	defer st.Close()
	if n := Archived(st, "alice"); n != 25 {
		t.Fatalf("after the restart alice's archive holds %d of 25", n)
	}
	m := of(srv)
	var first, last uint64
	st.View(func(tx *bolt.Tx) error { first, last = bounds(tx, "alice"); return nil })
	if first != 1000 || last != 1024 {
		t.Errorf("bounds %d..%d before the merge", first, last)
	}
	if id := m.ids.alloc(srv, "alice", time.Unix(0, 0)); id != 1025 {
		t.Errorf("the next id after a restart is %d, want 1025 (past the journaled ones)", id)
	}
	if err := m.merge(); err != nil {
		t.Fatal(err)
	}
	if err := m.merge(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if n := Archived(st, u); n != 25 {
			t.Errorf("after the merge %s's archive holds %d of 25", u, n)
		}
	}
	st.View(func(tx *bolt.Tx) error {
		if len(journalOf(tx, "alice")) != 0 || len(journalOf(tx, "bob")) != 0 {
			t.Error("records still journaled after a whole merge")
		}
		return nil
	})
}

// What a small commit writes to disk (issue 13: an SD card's wear): 20
// messages between 40 accounts whose archives are already large enough
// to have leaves of their own, in one commit of the queue. Each record
// written into its account's range dirtied a leaf per account and the
// branches above (~60-90 pages a commit, ~15 KB a message at 1,000
// msg/s); the journal dirties its last leaves.
func TestSmallCommitWritesFewPages(t *testing.T) {
	old := mergeDelayNs.Load()
	mergeDelayNs.Store(int64(time.Hour))
	t.Cleanup(func() { mergeDelayNs.Store(old) })
	r := newRig(t)
	users := make([]string, 40)
	for i := range users {
		users[i] = fmt.Sprintf("u%02d", i)
		if err := r.srv.Store.CreateAccount(users[i], "pw", false); err != nil {
			t.Fatal(err)
		}
	}
	text := string(slices.Repeat([]byte("x"), 200))
	send := func(n int) {
		t.Helper()
		for i := range n {
			from, to := users[i%40], users[(i+1)%40]
			el, err := stream.ParseElement([]byte("<message xmlns='jabber:client' type='chat' to='" + to + "@example.test'><body>" + text + "</body></message>"))
			if err != nil {
				t.Fatal(err)
			}
			r.srv.FromClient(r.session(from), el)
		}
		for _, u := range users {
			if !r.srv.WaitCommits(r.session(u), 20*time.Second) {
				t.Fatal("commits never finished")
			}
		}
	}
	writes := func() int {
		s := r.srv.Store.DB().Stats()
		return int(s.TxStats.GetWrite())
	}
	// 200 messages per account (each archived for both parties), merged:
	// every account has leaves of its own.
	send(8000)
	r.mergeAll()
	// Then 10 commits of 20 messages each.
	pages := 0
	for range 10 {
		release, started := make(chan struct{}), make(chan struct{})
		r.srv.Store.Enqueue(func(*bolt.Tx) error { close(started); <-release; return nil }, nil)
		<-started // the 20 wait for the next commit together
		before := writes()
		commits := r.srv.Store.Commits()
		for i := range 20 {
			from, to := users[i*2%40], users[(i*2+1)%40]
			el, _ := stream.ParseElement([]byte("<message xmlns='jabber:client' type='chat' to='" + to + "@example.test'><body>" + text + "</body></message>"))
			r.srv.FromClient(r.session(from), el)
		}
		close(release)
		for _, u := range users {
			if !r.srv.WaitCommits(r.session(u), 20*time.Second) {
				t.Fatal("commits never finished")
			}
		}
		if n := r.srv.Store.Commits() - commits; n != 2 {
			t.Fatalf("%d commits, want 2 (the held one and the 20 messages)", n)
		}
		pages += writes() - before
	}
	perCommit := float64(pages) / 10
	t.Logf("%.1f page writes per commit of 20 messages (~%.0f bytes a message)", perCommit, perCommit*4096/20)
	if perCommit > 15 {
		t.Errorf("a commit of 20 messages wrote %.1f pages", perCommit)
	}
}

// Past mergeMessages the journal is merged at once, every time: the
// journal must not grow for mergeDelay after each merge (the bench's
// 100,000-message fill was never merged and a page took 173 ms).
func TestMergeKeepsUp(t *testing.T) {
	oldDelay, oldN := mergeDelayNs.Load(), mergeMessages.Load()
	mergeDelayNs.Store(int64(time.Hour))
	mergeMessages.Store(30)
	t.Cleanup(func() { mergeDelayNs.Store(oldDelay); mergeMessages.Store(oldN) })
	r := newRig(t)
	journaled := func() int {
		n := 0
		r.srv.Store.View(func(tx *bolt.Tx) error { n = len(journalOf(tx, "alice")); return nil })
		return n
	}
	for round := range 3 {
		for i := range 30 {
			r.chat("bob", "alice", fmt.Sprintf("r%d-%d", round, i))
		}
		deadline := time.Now().Add(10 * time.Second)
		for journaled() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d messages still journaled past mergeMessages", round, journaled())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if p := r.query("alice", "", "<max>0</max>"); p.count != "90" {
		t.Errorf("count %q, want 90", p.count)
	}
}

// An account deletion leaves nothing of the account's own messages on
// disk: merged records' XML stays in the journal values (segment.go), so
// those are rewritten too; a message the other (existing) party archived
// stays readable for it.
func TestDeleteAccountForgetsJournal(t *testing.T) {
	r := newRig(t)
	r.chat("alice", "bob", "shared-with-bob")
	r.send("alice", "<message xmlns='jabber:client' type='chat' to='x@elsewhere.example'><body>alice-only-secret</body></message>")
	r.chat("carol", "bob", "carol-to-bob")
	r.mergeAll()
	if err := r.srv.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	raw := func(needle string) bool {
		found := false
		r.srv.Store.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				return b.ForEach(func(k, v []byte) error {
					if bytes.Contains(v, []byte(needle)) {
						found = true
					}
					return nil
				})
			})
		})
		return found
	}
	if raw("alice-only-secret") {
		t.Error("the deleted account's message to another server is still on disk")
	}
	if p := r.query("bob", "", ""); len(p.ids) != 2 || !raw("shared-with-bob") {
		t.Errorf("bob's archive has %d of 2 messages after alice's deletion", len(p.ids))
	}
	var bodies []string
	r.srv.Store.View(func(tx *bolt.Tx) error {
		return newView(tx, "bob").each(func(rec record) error { bodies = append(bodies, string(rec.xml)); return nil })
	})
	if len(bodies) != 2 || !strings.Contains(bodies[0], "shared-with-bob") || !strings.Contains(bodies[1], "carol-to-bob") {
		t.Errorf("bob's records after alice's deletion: %q", bodies)
	}
	if err := r.srv.DeleteAccount("bob"); err != nil {
		t.Fatal(err)
	}
	if raw("shared-with-bob") {
		t.Error("a message of two deleted accounts is still on disk")
	}
}

// Retention deletes the merged journal values once every message in them
// has expired (merged records keep their XML there, segment.go).
func TestRetentionExpiresJournal(t *testing.T) {
	r := newRig(t)
	r.chat("alice", "bob", "old-message")
	r.mergeAll()
	r.advance(DefaultRetention + time.Hour)
	r.chat("carol", "bob", "new-message")
	r.mergeAll()
	if _, err := r.m.sweep(timeID(r.m.now().Add(-DefaultRetention))); err != nil {
		t.Fatal(err)
	}
	var vals []string
	r.srv.Store.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJournal).ForEach(func(k, v []byte) error { vals = append(vals, string(v)); return nil })
	})
	if len(vals) != 1 || strings.Contains(vals[0], "old-message") || !strings.Contains(vals[0], "new-message") {
		t.Errorf("journal values after retention: %q", vals)
	}
	if p := r.query("bob", "", ""); len(p.ids) != 1 {
		t.Errorf("bob's archive holds %d after retention, want 1", len(p.ids))
	}
}

// The merge does not copy a message's XML into each party's segments:
// they refer to the journal value it was committed in (it was written
// three times in all, once per party on top of the journal's; the copies
// were most of what a merge cost at saturation).
func TestMergeKeepsXMLOnce(t *testing.T) {
	r := newRig(t)
	r.chat("alice", "bob", "written-once-please")
	r.mergeAll()
	n := 0
	r.srv.Store.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				n += bytes.Count(v, []byte("written-once-please"))
				return nil
			})
		})
	})
	if n != 1 {
		t.Errorf("the message's XML is stored %d times, want once", n)
	}
	for _, u := range []string{"alice", "bob"} {
		if p := r.query(u, "", ""); len(p.ids) != 1 {
			t.Errorf("%s's archive holds %d, want 1", u, len(p.ids))
		}
	}
}

// One account's records in the journal are bounded (what its queries
// decode besides their page) even while the whole journal is far from
// mergeMessages: a merge starts at mergeUserMessages of one account's.
func TestMergeWhenOneAccountIsBusy(t *testing.T) {
	oldDelay, oldN, oldU := mergeDelayNs.Load(), mergeMessages.Load(), mergeUserMessages.Load()
	mergeDelayNs.Store(int64(time.Hour))
	mergeMessages.Store(1 << 40)
	mergeUserMessages.Store(20)
	t.Cleanup(func() { mergeDelayNs.Store(oldDelay); mergeMessages.Store(oldN); mergeUserMessages.Store(oldU) })
	r := newRig(t)
	journaled := func() int {
		n := 0
		r.srv.Store.View(func(tx *bolt.Tx) error { n = len(journalOf(tx, "alice")); return nil })
		return n
	}
	for i := range 20 {
		r.chat("bob", "alice", fmt.Sprintf("m%d", i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for journaled() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of alice's messages still journaled past mergeUserMessages", journaled())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Journal values of version 1 (before the parties' filter, as a previous
// build left them unmerged) are read and merged.
func TestJournalVersion1(t *testing.T) {
	r := newRig(t)
	err := r.srv.Store.Update(func(tx *bolt.Tx) error {
		j, err := tx.CreateBucketIfNotExists(bucketJournal)
		if err != nil {
			return err
		}
		v := []byte{journalVersion1}
		for i := range 3 {
			v = appendJMsg(v, jMsg{entries: []jEntry{{user: "alice", id: uint64(100 + i), dir: dirIn, peer: "bob@example.test/r"},
				{user: "bob", id: uint64(100 + i), dir: dirOut, peer: "alice@example.test"}},
				xml: []byte("<message xmlns='jabber:client'><body>v1 " + strconv.Itoa(i) + "</body></message>")})
		}
		return j.Put(store.U64(1), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, merged := range []bool{false, true} {
		if merged {
			r.mergeAll()
		}
		for _, u := range []string{"alice", "bob"} {
			var bodies []string
			r.srv.Store.View(func(tx *bolt.Tx) error {
				return newView(tx, u).each(func(rec record) error { bodies = append(bodies, string(rec.xml)); return nil })
			})
			if len(bodies) != 3 || !strings.Contains(bodies[2], "v1 2") {
				t.Errorf("merged %v: %s's archive %q", merged, u, bodies)
			}
		}
	}
}

// A merged one-to-one conversation is stored in ~20 bytes a record: the
// segments refer to the journal for the XML, and a run of records with
// one peer names it once (kindRefSamePeer; ~50 bytes a record before).
func TestMergedRecordSize(t *testing.T) {
	r := newRig(t)
	const n = 100
	for i := range n {
		r.chat("alice", "bob", fmt.Sprintf("m%d", i))
	}
	r.mergeAll()
	size := 0
	r.srv.Store.View(func(tx *bolt.Tx) error {
		p := userPrefix("alice")
		c := tx.Bucket(bucketMsgs).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			size += len(v)
		}
		return nil
	})
	if per := float64(size) / n; per > 25 {
		t.Errorf("alice's segments take %.1f bytes a record", per)
	}
	good := 0
	r.srv.Store.View(func(tx *bolt.Tx) error {
		return newView(tx, "alice").each(func(rec record) error {
			if rec.peer == "bob@"+domain && strings.Contains(string(rec.xml), fmt.Sprintf(">m%d<", good)) {
				good++
			}
			return nil
		})
	})
	if good != n {
		t.Errorf("%d of alice's %d records read back with their peer and XML", good, n)
	}
}

// The scratch a large merge grew is not kept once merges stop (it stayed
// for good when the load stopped right after a large merge: RssAnon
// after the bench's archive fill 13-24 MiB).
func TestMergeScratchReleased(t *testing.T) {
	oldDelay, oldN := mergeDelayNs.Load(), mergeMessages.Load()
	mergeDelayNs.Store(int64(time.Hour)) // no merge but the test's
	mergeMessages.Store(1 << 40)
	t.Cleanup(func() { mergeDelayNs.Store(oldDelay); mergeMessages.Store(oldN) })
	r := newRig(t)
	err := r.srv.Store.Update(func(tx *bolt.Tx) error {
		for i := range 5000 {
			es := []jEntry{{user: "alice", id: uint64(1000 + i), dir: dirIn, peer: "bob@example.test/r"}}
			if err := journal(r.srv.Store, tx, es, []byte("<message/>"), [2]int{}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mergeDelayNs.Store(int64(300 * time.Millisecond)) // the release's delay
	r.m.merges.waiting.Store(1)
	r.m.merges.running.Store(true)
	r.m.runMerges()
	kept := func() int {
		r.m.mergeMu.Lock()
		defer r.m.mergeMu.Unlock()
		return cap(r.m.mergeScratch.recs)
	}
	if kept() == 0 {
		t.Fatal("no scratch after a merge of 5,000 records (the test proves nothing)")
	}
	deadline := time.Now().Add(10 * time.Second)
	for kept() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the merge still keeps scratch for %d records", kept())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
