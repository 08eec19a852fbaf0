package main

import (
	"errors"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/store"
)

// errRunning says a server owns the state directory: use its admin API.
var errRunning = errors.New("xmppd is running")

// openIdle opens the database for a command that works without a server,
// or returns errRunning when a server runs. A starting server holds the
// store's lock before its admin socket exists (it opens the chat listeners
// in between), so a locked store means "wait for the socket", not an
// error: the e2e suites create accounts right after the first XMPP answer
// and failed with "open xmppd.db: timeout" in that window.
func openIdle(dir state.Dir) (*store.Store, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if running(dir) {
			return nil, errRunning
		}
		if err := dir.Ensure(); err != nil {
			return nil, err
		}
		st, err := store.Open(dir.DB())
		if !errors.Is(err, bolterrors.ErrTimeout) || time.Now().After(deadline) {
			return st, err
		}
	}
}
