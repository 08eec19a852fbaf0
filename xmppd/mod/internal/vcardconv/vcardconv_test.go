package vcardconv_test

import (
	"testing"

	"github.com/hearthchat/hearth/xmppd/mod/internal/vcardconv"
	"github.com/hearthchat/hearth/xmppd/stream"
)

func parse(t *testing.T, s string) *stream.Element {
	t.Helper()
	el, err := stream.ParseElement([]byte(s))
	if err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return el
}

// A vcard-temp card with every mapped property, and what is not mapped
// (PHOTO, NOTE) beside them.
const temp = `<vCard xmlns='vcard-temp'>` +
	`<FN>Alice Liddell</FN>` +
	`<N><FAMILY>Liddell</FAMILY><GIVEN>Alice</GIVEN><MIDDLE>Pleasance</MIDDLE></N>` +
	`<NICKNAME>al</NICKNAME>` +
	`<BDAY>1852-05-04</BDAY>` +
	`<TITLE>Explorer</TITLE><ROLE>Dreamer</ROLE>` +
	`<URL>https://wonderland.example/</URL>` +
	`<DESC>Down the rabbit hole.</DESC>` +
	`<EMAIL><HOME/><INTERNET/><PREF/><USERID>alice@wonderland.example</USERID></EMAIL>` +
	`<TEL><CELL/><VOICE/><NUMBER>+44 1865 000000</NUMBER></TEL>` +
	`<TEL><WORK/><FAX/><NUMBER>+44-1865-111111</NUMBER></TEL>` +
	`<ADR><HOME/><STREET>Christ Church</STREET><LOCALITY>Oxford</LOCALITY><CTRY>UK</CTRY></ADR>` +
	`<ORG><ORGNAME>Christ Church</ORGNAME><ORGUNIT>Deanery</ORGUNIT></ORG>` +
	`<JABBERID>alice@wonderland.example</JABBERID>` +
	`<NOTE>kept as it is</NOTE>` +
	`<PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0K</BINVAL></PHOTO>` +
	`</vCard>`

// TestRoundTrip: every mapped vcard-temp property becomes the vCard4
// property XEP-0292 §11 names and comes back unchanged (type flags, PREF,
// a number with spaces); what is not mapped stays out of the vCard4.
func TestRoundTrip(t *testing.T) {
	card := parse(t, temp)
	v4 := vcardconv.Merge(nil, card)
	for _, want := range []string{
		`<fn><text>Alice Liddell</text></fn>`,
		`<n><surname>Liddell</surname><given>Alice</given><additional>Pleasance</additional><prefix></prefix><suffix></suffix></n>`,
		`<nickname><text>al</text></nickname>`,
		`<bday><date>1852-05-04</date></bday>`,
		`<note><text>Down the rabbit hole.</text></note>`,
		`<email><parameters><type><text>home</text></type><pref><integer>1</integer></pref></parameters><text>alice@wonderland.example</text></email>`,
		`<tel><parameters><type><text>voice</text><text>cell</text></type></parameters><text>+44 1865 000000</text></tel>`,
		`<tel><parameters><type><text>work</text><text>fax</text></type></parameters><uri>tel:+44-1865-111111</uri></tel>`,
		`<org><text>Christ Church</text><text>Deanery</text></org>`,
		`<impp><uri>xmpp:alice@wonderland.example</uri></impp>`,
	} {
		if !contains(v4, parse(t, inNS4(want))) {
			t.Errorf("vCard4 lacks %s:\n%s", want, v4)
		}
	}
	if v4.Child(vcardconv.NS4, "photo") != nil || len(v4.Children()) != 14 {
		t.Errorf("vCard4 has %d properties, want the 14 mapped (two TEL): %s", len(v4.Children()), v4)
	}

	back := vcardconv.View(nil, v4)
	want := vcardconv.Strip(card)
	if len(want.Children()) != 2 {
		t.Fatalf("Strip kept %s", want)
	}
	// Compare property by property: the card minus NOTE and PHOTO, with
	// EMAIL's flags in vcard-temp's usual order.
	orig := card.Children()
	got := back.Children()
	if len(got) != len(orig)-2 {
		t.Fatalf("%d properties came back, want %d:\n%s", len(got), len(orig)-2, back)
	}
	for i, p := range got {
		if !sameProp(p, orig[i]) {
			t.Errorf("property %d: %s, want %s", i, p, orig[i])
		}
	}
}

func inNS4(s string) string {
	el := "<vcard xmlns='" + vcardconv.NS4 + "'>" + s + "</vcard>"
	return el
}

// contains reports whether v4 has a property equal to the one in want.
func contains(v4, want *stream.Element) bool {
	w := want.FirstChild().String()
	for _, p := range v4.Children() {
		if p.String() == w {
			return true
		}
	}
	return false
}

// sameProp compares two vcard-temp properties ignoring child order and
// INTERNET (which the vCard4 side implies for every EMAIL).
func sameProp(a, b *stream.Element) bool {
	if a.Local != b.Local || a.Text() != b.Text() {
		return false
	}
	set := func(e *stream.Element) map[string]int {
		m := map[string]int{}
		for _, c := range e.Children() {
			if c.Local != "INTERNET" {
				m[c.String()]++
			}
		}
		return m
	}
	sa, sb := set(a), set(b)
	if len(sa) != len(sb) {
		return false
	}
	for k, n := range sa {
		if sb[k] != n {
			return false
		}
	}
	return true
}

// TestMergeKeepsVCard4Only: a vcard-temp set replaces the mapped vCard4
// properties (a name removed in vcard-temp is removed) and keeps those
// vcard-temp cannot say (GENDER, an IMPP that is not xmpp:, PHOTO).
func TestMergeKeepsVCard4Only(t *testing.T) {
	old := parse(t, inNS4(`<fn><text>Old Name</text></fn><nickname><text>old</text></nickname>`+
		`<gender><sex><text>F</text></sex></gender>`+
		`<impp><uri>sip:alice@wonderland.example</uri></impp><impp><uri>xmpp:old@wonderland.example</uri></impp>`+
		`<photo><uri>https://wonderland.example/a.png</uri></photo>`))
	v4 := vcardconv.Merge(old, parse(t, `<vCard xmlns='vcard-temp'><FN>New Name</FN></vCard>`))
	want := inNS4(`<fn><text>New Name</text></fn><gender><sex><text>F</text></sex></gender>` +
		`<impp><uri>sip:alice@wonderland.example</uri></impp><photo><uri>https://wonderland.example/a.png</uri></photo>`)
	if got := v4.String(); got != parse(t, want).String() {
		t.Fatalf("merged:\n%s\nwant:\n%s", got, parse(t, want))
	}
}

// TestView: the stored card's mapped properties give way to the vCard4's
// (none when the reader may not see it), its others stay; a vCard4 with
// several nicknames and an empty value gives vcard-temp one element per
// value and nothing for the empty one.
func TestView(t *testing.T) {
	stored := parse(t, `<vCard xmlns='vcard-temp'><FN>Stale</FN><NOTE>mine</NOTE><PHOTO><BINVAL>AAAA</BINVAL></PHOTO></vCard>`)
	v4 := parse(t, inNS4(`<fn><text>Alice</text></fn><nickname><text>al</text><text>ally</text></nickname><title><text> </text></title>`))
	got := vcardconv.View(stored, v4).String()
	want := `<vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>al</NICKNAME><NICKNAME>ally</NICKNAME><NOTE>mine</NOTE><PHOTO><BINVAL>AAAA</BINVAL></PHOTO></vCard>`
	if got != want {
		t.Errorf("view:\n%s\nwant:\n%s", got, want)
	}
	if got := vcardconv.View(stored, nil).String(); got != `<vCard xmlns='vcard-temp'><NOTE>mine</NOTE><PHOTO><BINVAL>AAAA</BINVAL></PHOTO></vCard>` {
		t.Errorf("view without the vCard4: %s", got)
	}
}
