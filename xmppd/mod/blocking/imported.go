package blocking

import bolt "go.etcd.io/bbolt"

// reloadUser reads user's list from the store into memory: an account
// imported while the server runs (server.AccountImported) wrote its list
// in the store only, and blocks() consults memory.
func (m *mod) reloadUser(user string) {
	// wmu first, as every change takes it: a block stored meanwhile is
	// neither lost nor overwritten by an older read.
	m.wmu.Lock()
	defer m.wmu.Unlock()
	var l []string
	if err := m.srv.Store.View(func(tx *bolt.Tx) error { l = ListTx(tx, user); return nil }); err != nil {
		m.srv.Log.Error("blocking: read imported list", "user", user, "err", err)
		return
	}
	set := map[string]bool{}
	for _, j := range l {
		set[j] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(set) == 0 {
		delete(m.lists, user)
	} else {
		m.lists[user] = set
	}
}
