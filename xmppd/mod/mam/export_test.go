package mam

import (
	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// Archived counts user's archived messages straight from storage, the
// journal's included (for the external tests).
func Archived(st *store.Store, user string) int {
	n := 0
	st.View(func(tx *bolt.Tx) error {
		return newView(tx, user).each(func(record) error { n++; return nil })
	})
	return n
}

// mergeAll merges the journal, if this build has one (the tests that
// measure what it changes run on builds without it too).
func (r *rig) mergeAll() {
	if err := r.m.merge(); err != nil {
		r.t.Fatal(err)
	}
}
