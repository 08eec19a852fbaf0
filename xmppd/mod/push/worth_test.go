package push

import (
	"testing"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// A group chat line wakes a member's phone only when it names them as a
// whole word, as the room's mentions do (server.Names): "al" is not named
// in "also".
func TestWorthGroupchatNamesWholeWord(t *testing.T) {
	msg := func(body string) *stream.Element {
		return stream.New(stream.NSClient, "message", "type", "groupchat").Add(stream.New(stream.NSClient, "body").AddText(body))
	}
	if worth(msg("I also think so"), "al") {
		t.Error(`"also" woke al`)
	}
	if !worth(msg("Al, are you coming?"), "al") {
		t.Error(`"Al, are you coming?" did not wake al`)
	}
}
