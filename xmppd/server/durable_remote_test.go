package server

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"
)

// A stanza from another server (no session) joins the commit queue without
// waiting for its commit: an s2s link's reader committed each message on
// its own (2 fsyncs per message, 207 msg/s between two Hearths); the
// server's own stanzas still commit before Commit returns.
func TestCommitFromAnotherServerDoesNotWait(t *testing.T) {
	srv := newServer(t)
	release := make(chan struct{})
	done := make(chan error, 1)
	returned := make(chan struct{})
	go func() {
		srv.Commit(&Stanza{From: jid.MustParse("bob@other.example/r")}, func(*bolt.Tx) error { <-release; return nil }, func(err error) { done <- err })
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("Commit waited for the commit of another server's stanza")
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the commit never finished")
	}
	// The server's own: committed before Commit returns.
	ran := false
	srv.Commit(&Stanza{From: jid.MustParse("example.test")}, func(*bolt.Tx) error { ran = true; return nil }, nil)
	if !ran {
		t.Fatal("the server's own stanza was not committed before Commit returned")
	}
}
