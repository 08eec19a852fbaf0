package pep_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/hearthchat/hearth/xmppd/mod/internal/iqtest"
	"github.com/hearthchat/hearth/xmppd/mod/pep"
)

func image(s string) (b64, id string) {
	sum := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString([]byte(s)), hex.EncodeToString(sum[:])
}

// TestAvatarVCardConversion: an XEP-0084 avatar shows in the vCard and as
// the XEP-0153 hash in presence; a vCard PHOTO becomes the XEP-0084
// avatar, with the event to contacts that asked +notify (XEP-0398).
func TestAvatarVCardConversion(t *testing.T) {
	_, alice, bob := start(t)
	aj := "alice@" + iqtest.Domain
	online(t, bob, "v1", pep.NodeAvatarMeta+"+notify")

	b64, id := image("first image bytes")
	alice.Result("set", "", publish(pep.NodeAvatarData, id, "<data xmlns='urn:xmpp:avatar:data'>"+b64+"</data>", ""))
	alice.Result("set", "", publish(pep.NodeAvatarMeta, id, fmt.Sprintf("<metadata xmlns='urn:xmpp:avatar:metadata'><info id='%s' type='image/png' bytes='17'/></metadata>", id), ""))
	card := bob.Result("get", aj, "<vCard xmlns='vcard-temp'/>")
	if got := card.Child("vcard-temp", "PHOTO"); got == nil || got.ChildText("vcard-temp", "BINVAL") != b64 || got.ChildText("vcard-temp", "TYPE") != "image/png" {
		t.Fatalf("vCard after the PEP avatar: %s", card)
	}
	alice.Send("<presence/>")
	for range 50 {
		el := bob.El()
		if el.Local == "presence" && el.Get("from") == alice.JID {
			if got := el.Child("vcard-temp:x:update", "x").ChildText("vcard-temp:x:update", "photo"); got != id {
				t.Fatalf("presence hash %q, want %q: %s", got, id, el)
			}
			break
		}
	}

	// The other way: a vCard PHOTO becomes the PEP avatar.
	b64, id2 := image("second image")
	alice.Result("set", "", "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/jpeg</TYPE><BINVAL>"+b64+"</BINVAL></PHOTO></vCard>")
	ev := event(t, bob, pep.NodeAvatarMeta)
	if info := ev.FirstChild().FirstChild().Child(pep.NodeAvatarMeta, "info"); info == nil || info.Get("id") != id2 || info.Get("type") != "image/jpeg" {
		t.Fatalf("metadata event: %s", ev)
	}
	data := bob.Result("get", aj, "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:data'><item id='"+id2+"'/></items></pubsub>")
	if got := data.FirstChild().FirstChild().ChildText(pep.NodeAvatarData, "data"); got != b64 {
		t.Fatalf("avatar data %q", got)
	}
	// An empty PHOTO removes it.
	alice.Result("set", "", "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO/></vCard>")
	ev = event(t, bob, pep.NodeAvatarMeta)
	if m := ev.FirstChild().FirstChild(); m == nil || m.Child(pep.NodeAvatarMeta, "info") != nil {
		t.Fatalf("removal: %s", ev)
	}
}
