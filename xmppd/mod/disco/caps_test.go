package disco

import (
	"crypto/sha1"
	"testing"

	mdisco "mellium.im/xmpp/disco"
	"mellium.im/xmpp/disco/info"

	"github.com/hearthchat/hearth/xmppd/stream"
)

func parse(t *testing.T, s string) *stream.Element {
	t.Helper()
	el, err := stream.ParseElement([]byte(s))
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return el
}

// TestVer reproduces the worked examples of XEP-0115 §5.2 and §5.3 and
// checks the processing rules for forms.
func TestVer(t *testing.T) {
	const form = `<x xmlns='jabber:x:data' type='result'>
	  <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
	  <field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field>
	  <field var='os'><value>Mac</value></field>
	  <field var='os_version'><value>10.5.1</value></field>
	  <field var='software'><value>Psi</value></field>
	  <field var='software_version'><value>0.11</value></field>
	</x>`
	// The same form with fields and values in another order.
	const shuffled = `<x xmlns='jabber:x:data' type='result'>
	  <field var='software_version'><value>0.11</value></field>
	  <field var='os'><value>Mac</value></field>
	  <field var='ip_version' type='text-multi'><value>ipv6</value><value>ipv4</value></field>
	  <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
	  <field var='software'><value>Psi</value></field>
	  <field var='os_version'><value>10.5.1</value></field>
	</x>`
	const other = `<x xmlns='jabber:x:data' type='result'>
	  <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/network/serverinfo</value></field>
	  <field var='admin-addresses'><value>xmpp:a@example.test</value></field></x>`
	const notHidden = `<x xmlns='jabber:x:data' type='result'>
	  <field var='FORM_TYPE'><value>urn:example:ignored</value></field>
	  <field var='x'><value>y</value></field></x>`
	const psi = `<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
	  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
	  <feature var='http://jabber.org/protocol/caps'/>
	  <feature var='http://jabber.org/protocol/disco#info'/>
	  <feature var='http://jabber.org/protocol/disco#items'/>
	  <feature var='http://jabber.org/protocol/muc'/>`
	const complexVer = "q07IKJEyjvHSyhy//CH0CxmKi8w="
	for _, tc := range []struct{ name, body, want string }{
		{"XEP-0115 §5.2", `<identity category='client' name='Exodus 0.9.1' type='pc'/>
		  <feature var='http://jabber.org/protocol/muc'/>
		  <feature var='http://jabber.org/protocol/disco#info'/>
		  <feature var='http://jabber.org/protocol/disco#items'/>
		  <feature var='http://jabber.org/protocol/caps'/>`, "QgayPKawpkPSDYmwT/WM94uAlu0="},
		{"XEP-0115 §5.3", psi + form, complexVer},
		{"form before the identities", form + psi, complexVer},
		{"shuffled form", psi + shuffled, complexVer},
		{"form without hidden FORM_TYPE is ignored", psi + notHidden + form, complexVer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := parse(t, "<query xmlns='http://jabber.org/protocol/disco#info'>"+tc.body+"</query>")
			if got := Ver(q); got != tc.want {
				t.Errorf("Ver = %s, want %s", got, tc.want)
			}
		})
	}
	// Two forms: the hash must not depend on their order.
	a := Ver(parse(t, "<query xmlns='http://jabber.org/protocol/disco#info'>"+psi+form+other+"</query>"))
	b := Ver(parse(t, "<query xmlns='http://jabber.org/protocol/disco#info'>"+psi+other+form+"</query>"))
	if a != b || a == complexVer {
		t.Errorf("two forms: %s and %s differ or equal the one-form hash", a, b)
	}
}

// TestVerMatchesMellium checks Ver against mellium.im/xmpp/disco's
// independent implementation on form-less input.
func TestVerMatchesMellium(t *testing.T) {
	for _, tc := range []struct {
		ids      []info.Identity
		features []string
	}{
		{[]info.Identity{{Category: "server", Type: "im", Name: "Hearth"}},
			[]string{"urn:xmpp:ping", "http://jabber.org/protocol/disco#info", "jabber:iq:version", "vcard-temp"}},
		{[]info.Identity{{Category: "server", Type: "im", Name: "Hearth"}, {Category: "pubsub", Type: "pep"}, {Category: "client", Type: "pc", Lang: "de", Name: "Ä"}},
			[]string{"b", "a", "c<d"}},
	} {
		q := stream.New(NSInfo, "query")
		for _, id := range tc.ids {
			el := stream.New(NSInfo, "identity", "category", id.Category, "type", id.Type)
			el.Set("name", id.Name)
			if id.Lang != "" {
				el.Attr = append(el.Attr, stream.Attr{Space: stream.NSXML, Local: "lang", Prefix: "xml", Value: id.Lang})
			}
			q.Add(el)
		}
		mi := mdisco.Info{Identity: tc.ids}
		for _, f := range tc.features {
			q.Add(stream.New(NSInfo, "feature", "var", f))
			mi.Features = append(mi.Features, info.Feature{Var: f})
		}
		if got, want := Ver(q), mi.Hash(sha1.New()); got != want {
			t.Errorf("%v %v: Ver %s, mellium %s", tc.ids, tc.features, got, want)
		}
	}
}
