package main

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/store"
)

// TestOpenIdleWaitsForStartingServer: a server that holds the store but
// has no admin socket yet (it is starting) is waited for; the command then
// goes through the socket instead of failing on the lock.
func TestOpenIdleWaitsForStartingServer(t *testing.T) {
	dir := state.Dir(t.TempDir())
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	held, err := store.Open(dir.DB())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	go func() {
		time.Sleep(time.Second)
		ln, err := net.Listen("unix", dir.AdminSocket())
		if err != nil {
			return
		}
		t.Cleanup(func() { ln.Close() })
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	st, err := openIdle(dir)
	if st != nil {
		st.Close()
	}
	if !errors.Is(err, errRunning) {
		t.Fatalf("openIdle while a server starts: %v, want errRunning", err)
	}
	// Nobody holds it: opened directly.
	held.Close()
	dir2 := state.Dir(t.TempDir())
	st, err = openIdle(dir2)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}
