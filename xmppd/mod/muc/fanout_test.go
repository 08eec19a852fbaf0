package muc

import (
	"fmt"
	"net"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
	bolt "go.etcd.io/bbolt"
)

// TestRoomMessagesShareCommit: two messages a client sends to one room in
// quick succession are archived by one commit-queue transaction (issue
// 12: with the archive written by Store.Batch under the room's mutex,
// every room message cost its own commit), in order, and the sender's
// acknowledgement waits for them (server.Commit).
func TestRoomMessagesShareCommit(t *testing.T) {
	old := store.CommitInterval
	// Long enough that both messages are queued before the gathered
	// commit on a loaded machine; only this test waits for it.
	store.CommitInterval = 2 * time.Second
	t.Cleanup(func() { store.CommitInterval = old })

	m, st, _ := newService(t, Options{NoDefaultRoom: true})
	r, _, err := m.create("r", "alice@example.test", "alice", defaultConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	full := jid.MustParse("alice@example.test/res")
	r.occ["alice"] = &occupant{nick: "alice", bare: "alice@example.test", real: []client{{jid: full.String()}}, role: "participant", id: "occ"}
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	sess := session.New(c1, full, stream.NSClient)

	// A write just committed: the queue now gathers for CommitInterval.
	warm := make(chan error, 1)
	st.Enqueue(func(*bolt.Tx) error { return nil }, func(err error) { warm <- err })
	if err := <-warm; err != nil {
		t.Fatal(err)
	}
	before := st.Commits()
	for i := range 2 {
		el, err := stream.ParseElement([]byte(fmt.Sprintf("<message xmlns='jabber:client' type='groupchat' to='r@groups.example.test'><body>m%d</body></message>", i)))
		if err != nil {
			t.Fatal(err)
		}
		m.groupchat(&server.Stanza{El: el, From: full, To: jid.MustParse("r@groups.example.test"), Origin: sess}, r)
	}
	r.mu.Unlock()
	// The sender's acknowledgement does not cover them yet: their
	// commit is outstanding on its session (server/durable.go).
	if m.srv.WaitCommits(sess, 0) {
		t.Fatal("the room messages' commit is not outstanding on the sender's session")
	}

	var recs []record
	// The commit counter moves after the transaction is visible to
	// readers: wait for both (it once read 0 right after the messages).
	for deadline := time.Now().Add(20 * time.Second); len(recs) < 2 || st.Commits() == before; {
		if time.Now().After(deadline) {
			t.Fatalf("archived %d of 2 messages", len(recs))
		}
		time.Sleep(10 * time.Millisecond)
		if recs, _, err = m.read("r", 0, 0, time.Time{}, time.Time{}, 10, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := st.Commits() - before; got != 1 {
		t.Fatalf("two room messages took %d commit-queue commits, want 1 shared", got)
	}
	for i, rec := range recs {
		if b := rec.el.ChildText(stream.NSClient, "body"); b != fmt.Sprintf("m%d", i) || rec.seq != uint64(i+1) {
			t.Fatalf("archive[%d] = seq %d %q", i, rec.seq, b)
		}
	}
	if !m.srv.WaitCommits(sess, 10*time.Second) {
		t.Fatal("the sender's commits never completed")
	}
}

// TestMentionAfterCommit: a room message naming an absent member wakes
// them (server.Mentioned) only once its archive commit succeeded. The
// mention was fired where the message was accepted, before the commit,
// so a message whose commit failed — bounced to its sender, not in the
// archive — still woke the member's phone.
func TestMentionAfterCommit(t *testing.T) {
	m, st, _ := newService(t, Options{NoDefaultRoom: true})
	var mentioned []server.Mention
	server.Mentioned.On(m.srv, func(x server.Mention) { mentioned = append(mentioned, x) })
	cfg := defaultConfig()
	cfg.MembersOnly = true
	r, _, err := m.create("r", "alice@example.test", "alice", cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.mu.Unlock()
	r.st.Affs["carol@example.test"] = "member"
	full := jid.MustParse("alice@example.test/res")
	r.occ["alice"] = &occupant{nick: "alice", bare: "alice@example.test", real: []client{{jid: full.String()}}, role: "participant", id: "occ"}
	say := func(body string) {
		t.Helper()
		el, err := stream.ParseElement([]byte("<message xmlns='jabber:client' type='groupchat' to='r@groups.example.test'><body>" + body + "</body></message>"))
		if err != nil {
			t.Fatal(err)
		}
		// Not from a local session: server.Commit commits before it
		// returns; flush fans out whatever is committed.
		m.groupchat(&server.Stanza{El: el, From: full, To: jid.MustParse("r@groups.example.test")}, r)
		m.flush(r)
	}

	// The room's archive cannot be written: a plain value where its
	// bucket goes makes every archive commit of the room fail.
	block := func(on bool) {
		t.Helper()
		if err := st.Batch(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketArchive)
			if !on {
				return b.Delete([]byte("r"))
			}
			if b.Bucket([]byte("r")) != nil {
				if err := b.DeleteBucket([]byte("r")); err != nil {
					return err
				}
			}
			return b.Put([]byte("r"), []byte("not a bucket"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	block(true)
	say("carol, the commit of this fails")
	if recs, _, err := m.read("r", 0, 0, time.Time{}, time.Time{}, 10, false); err == nil && len(recs) != 0 {
		t.Fatalf("the failed message is in the archive: %d records", len(recs))
	}
	if len(mentioned) != 0 {
		t.Fatalf("a message whose commit failed woke %+v", mentioned)
	}

	block(false)
	say("carol, this one is committed")
	recs, _, err := m.read("r", 0, 0, time.Time{}, time.Time{}, 10, false)
	if err != nil || len(recs) != 1 {
		t.Fatalf("archive after the good message: %d records, %v", len(recs), err)
	}
	if len(mentioned) != 1 || mentioned[0].User != "carol" || mentioned[0].Body != "carol, this one is committed" {
		t.Fatalf("mentions after a committed message: %+v, want one for carol", mentioned)
	}
}
