package offline

import (
	"testing"

	"mellium.im/xmpp/jid"
)

// TestSenderKey: a local member's share is their own; a remote server's
// JIDs share one (it could mint a new JID per message).
func TestSenderKey(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.test/phone": "alice@example.test",
		"x@remote.example/a":       "remote.example",
		"y@remote.example":         "remote.example",
		"example.test":             "example.test",
	} {
		j := jid.MustParse(in)
		if got := senderKey(j, "example.test"); got != want {
			t.Errorf("senderKey(%s) = %q, want %q", in, got, want)
		}
	}
}
