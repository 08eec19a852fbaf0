package pep_test

import (
	"fmt"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
)

// BenchmarkPublishNotify: one publish (a durable bbolt commit) and its
// notification to a contact that asked +notify, end to end over c2s.
func BenchmarkPublishNotify(b *testing.B) {
	d := xmpptest.Start(b, nil)
	if err := d.Server.Contacts().Befriend("alice", "bob", ""); err != nil {
		b.Fatal(err)
	}
	alice, bob := iqtest.Login(b, d, "alice", "a"), iqtest.Login(b, d, "bob", "b")
	bob.Send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://test' ver='v'/></presence>")
	for {
		el := bob.El()
		if el.Local == "iq" && el.Get("type") == "get" {
			bob.Send("<iq type='result' id='" + el.Get("id") + "' to='" + el.Get("from") + "'><query xmlns='http://jabber.org/protocol/disco#info'><feature var='urn:t+notify'/></query></iq>")
			break
		}
	}
	opts := openOpts(field("pubsub#max_items", "max"))
	b.ResetTimer()
	for i := range b.N {
		alice.Result("set", "", publish("urn:t", fmt.Sprint(i%300), "<x xmlns='urn:t'>payload</x>", opts))
		for {
			if el := bob.El(); el.Local == "message" {
				break
			}
		}
	}
}
