package roster

import (
	"fmt"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/store"

	"github.com/hearthchat/hearth/xmppd/server"
)

// FillMaximal gives user as big a roster as the limits allow (see
// fillMaximal) and returns the number of items.
func FillMaximal(t testing.TB, srv *server.Server, user string, sub Sub) int {
	return fillMaximal(t, srv, user, sub)
}

// PutOverBudget stores n listed items of about size bytes each for user
// without charging them, like a roster kept from before the budget.
func PutOverBudget(t testing.TB, srv *server.Server, user string, n, size int) {
	t.Helper()
	err := srv.Store.Update(func(tx *bolt.Tx) error {
		for i := range n {
			it := &Item{Listed: true, Name: strings.Repeat("x", size)}
			if err := put(tx, user, fmt.Sprintf("old%d@example.test", i), it, store.Limit{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
