package roster

import (
	"testing"

	"github.com/hearthchat/hearth/xmppd/server"
)

// FillMaximal gives user as big a roster as the limits allow (see
// fillMaximal) and returns the number of items.
func FillMaximal(t testing.TB, srv *server.Server, user string, sub Sub) int {
	return fillMaximal(t, srv, user, sub)
}
