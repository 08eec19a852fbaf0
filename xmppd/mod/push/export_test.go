package push

import (
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
)

// Registrations lists user's stored registrations as "jid node".
func Registrations(srv *server.Server, user string) []string {
	var out []string
	srv.Store.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		prefix := store.Key(user, "")
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
			_, j, node := splitKey(string(k))
			out = append(out, j+" "+node)
		}
		return nil
	})
	return out
}
