package server

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/session"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// issue 13: a stanza whose commit is outstanding is not acknowledged, an
// iq from the same session waits for it, and the acknowledgement owed is
// announced (Committed) once the commit is done.
func TestCommitHoldsAcknowledgement(t *testing.T) {
	srv := newServer(t)
	sess, _ := pipeSession(t, srv, "alice@example.test/a")
	sess.EnableAcks("")
	owed := make(chan uint32, 4)
	Committed.On(srv, func(s *session.Session) { owed <- srv.DurableCount(s) })
	answered := make(chan struct{}, 1)
	srv.HandleIQ(ToServer, "get", "urn:example:q", "query", func(*Stanza) (*stream.Element, error) {
		answered <- struct{}{}
		return nil, nil
	})

	// Stanza 1: committed at once.
	srv.Commit(&Stanza{Origin: sess}, func(*bolt.Tx) error { return nil }, nil)
	sess.CountIn()
	if !srv.WaitCommits(sess, 5*time.Second) {
		t.Fatal("a quick commit never finished")
	}
	// Stanza 2: its commit is held up.
	release := make(chan struct{})
	done := make(chan error, 1)
	srv.Commit(&Stanza{Origin: sess}, func(*bolt.Tx) error { <-release; return nil }, func(err error) { done <- err })
	sess.CountIn()
	// Stanza 3 needs no commit.
	sess.CountIn()
	if h := srv.DurableCount(sess); h != 1 {
		t.Fatalf("acknowledgeable count %d with stanza 2's commit outstanding, want 1", h)
	}
	if srv.WaitCommits(sess, 20*time.Millisecond) {
		t.Fatal("WaitCommits returned with a commit outstanding")
	}
	go srv.FromClient(sess, stream.New(stream.NSClient, "iq", "type", "get", "id", "1", "to", "example.test").
		Add(stream.New("urn:example:q", "query")))
	select {
	case <-answered:
		t.Fatal("an iq was answered before the session's earlier commit was done")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-owed:
		if h != 3 {
			t.Errorf("after the commit the owed acknowledgement is h=%d, want 3", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Committed never fired after a short acknowledgement")
	}
	select {
	case <-answered:
	case <-time.After(5 * time.Second):
		t.Fatal("the iq was never answered after the commit")
	}
}
