package blocking

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
)

// BenchmarkBlocks is the check every routed message, presence and iq of
// a member pays: with no list (most members) and with a full one.
func BenchmarkBlocks(b *testing.B) {
	srv, err := server.New("example.test", nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	m := of(srv)
	full := map[string]bool{}
	for i := range MaxItems {
		full[fmt.Sprintf("spam%d@spam%d.example", i, i)] = true
	}
	m.lists["full"] = full
	from := jid.MustParse("bob@chat.friends.example/phone")
	for _, user := range []string{"empty", "full"} {
		b.Run(user, func(b *testing.B) {
			for range b.N {
				if m.blocks(user, from) {
					b.Fatal("blocked")
				}
			}
		})
	}
}
