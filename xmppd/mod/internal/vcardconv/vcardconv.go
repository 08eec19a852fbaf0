// Package vcardconv maps between the two vCard formats an account has:
// XEP-0054 vcard-temp and XEP-0292 vCard4 (RFC 6351 xCard), following
// XEP-0292 §11. The pep module uses it when a vcard-temp set updates the
// vCard4 node, the vcard module when it answers a vcard-temp get from the
// vCard4 node; modules never import each other, so the mapping lives here.
//
// Only the properties both formats carry and clients show are mapped
// ("mapped properties"): FN, N, NICKNAME, BDAY, TITLE, ROLE, URL, DESC
// (vCard4 NOTE, §11.1.1), EMAIL, TEL, ADR, ORG and JABBERID (vCard4 IMPP
// with an xmpp: URI, §11.1.2). Everything else stays in the format it was
// written in: a vcard-temp PHOTO is the XEP-0084 avatar's business
// (XEP-0398), vCard4 properties vcard-temp has no word for (GENDER, LANG,
// KIND, other IMPP schemes, ...) are kept when a vcard-temp client
// rewrites the card, and vcard-temp-only ones (NOTE, PHOTO, LABEL, ...)
// when a vCard4 client does.
package vcardconv

import (
	"strings"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// Namespaces.
const (
	NSTemp = "vcard-temp"
	NS4    = "urn:ietf:params:xml:ns:vcard-4.0"
)

// tempMapped and v4Mapped are the mapped properties' element names.
var (
	tempMapped = map[string]bool{"FN": true, "N": true, "NICKNAME": true, "BDAY": true, "TITLE": true, "ROLE": true,
		"URL": true, "DESC": true, "EMAIL": true, "TEL": true, "ADR": true, "ORG": true, "JABBERID": true}
	v4Mapped = map[string]bool{"fn": true, "n": true, "nickname": true, "bday": true, "title": true, "role": true,
		"url": true, "note": true, "email": true, "tel": true, "adr": true, "org": true}
)

// simple are the one-value properties: vcard-temp name, vCard4 name, the
// vCard4 value element.
var simple = []struct{ temp, v4, value string }{
	{"FN", "fn", "text"}, {"TITLE", "title", "text"}, {"ROLE", "role", "text"},
	{"URL", "url", "uri"}, {"DESC", "note", "text"},
}

// The N and ADR components in the order both formats list them.
var (
	nParts   = [][2]string{{"FAMILY", "surname"}, {"GIVEN", "given"}, {"MIDDLE", "additional"}, {"PREFIX", "prefix"}, {"SUFFIX", "suffix"}}
	adrParts = [][2]string{{"POBOX", "pobox"}, {"EXTADD", "ext"}, {"STREET", "street"}, {"LOCALITY", "locality"},
		{"REGION", "region"}, {"PCODE", "code"}, {"CTRY", "country"}}
)

// The type flags each format can say of an EMAIL, TEL or ADR (vcard-temp
// has empty elements, vCard4 a type parameter); the others (vcard-temp's
// INTERNET, MODEM, ...; vCard4's textphone, ...) have no counterpart.
var typeFlags = map[string][]string{
	"EMAIL": {"HOME", "WORK"},
	"TEL":   {"HOME", "WORK", "VOICE", "FAX", "PAGER", "CELL", "VIDEO"},
	"ADR":   {"HOME", "WORK"},
}

func isV4Mapped(p *stream.Element) bool {
	if p.Space != NS4 {
		return false
	}
	if p.Local == "impp" {
		return strings.HasPrefix(strings.TrimSpace(p.ChildText(NS4, "uri")), "xmpp:")
	}
	return v4Mapped[p.Local]
}

// Strip returns a copy of the vcard-temp card without its mapped
// properties.
func Strip(card *stream.Element) *stream.Element {
	out := stream.New(NSTemp, "vCard")
	for _, c := range card.Children() {
		if !(c.Space == NSTemp && tempMapped[c.Local]) {
			out.Add(c.Copy())
		}
	}
	return out
}

// View is the vcard-temp card a reader gets: stored (the card a client
// set, nil for none) without its mapped properties, and those of v4 (the
// account's vCard4, nil when the reader may not see it) in their place.
func View(stored, v4 *stream.Element) *stream.Element {
	out := stream.New(NSTemp, "vCard")
	if v4 != nil {
		out.Add(ToTemp(v4)...)
	}
	if stored != nil {
		out.Add(Strip(stored).Children()...)
	}
	return out
}

// Merge returns the vCard4 a vcard-temp set makes of old (the account's
// current vCard4, nil for none): old's mapped properties replaced by
// those of card, its others kept.
func Merge(old, card *stream.Element) *stream.Element {
	out := stream.New(NS4, "vcard")
	out.Add(FromTemp(card)...)
	if old != nil {
		for _, p := range old.Children() {
			if !isV4Mapped(p) {
				out.Add(p.Copy())
			}
		}
	}
	return out
}

func text(el *stream.Element, space, local string) string {
	return strings.TrimSpace(el.ChildText(space, local))
}

func v4Value(name, value string) *stream.Element {
	return stream.New(NS4, name).Add(stream.New(NS4, "text").AddText(value))
}

// FromTemp is the vCard4 properties of card's mapped properties.
func FromTemp(card *stream.Element) []*stream.Element {
	var out []*stream.Element
	for _, c := range card.Children() {
		if c.Space != NSTemp {
			continue
		}
		if p := propFromTemp(c); p != nil {
			out = append(out, p)
		}
	}
	return out
}

func propFromTemp(c *stream.Element) *stream.Element {
	for _, s := range simple {
		if c.Local == s.temp {
			v := strings.TrimSpace(c.Text())
			if v == "" {
				return nil
			}
			return stream.New(NS4, s.v4).Add(stream.New(NS4, s.value).AddText(v))
		}
	}
	switch c.Local {
	case "NICKNAME":
		if v := strings.TrimSpace(c.Text()); v != "" {
			return v4Value("nickname", v)
		}
	case "BDAY":
		if v := strings.TrimSpace(c.Text()); v != "" {
			return stream.New(NS4, "bday").Add(stream.New(NS4, "date").AddText(v))
		}
	case "N":
		if n := stream.New(NS4, "n"); partsTo4(n, c, nParts) {
			return n
		}
	case "JABBERID":
		if v := strings.TrimSpace(c.Text()); v != "" {
			return stream.New(NS4, "impp").Add(stream.New(NS4, "uri").AddText("xmpp:" + v))
		}
	case "ORG":
		org := stream.New(NS4, "org")
		if v := text(c, NSTemp, "ORGNAME"); v != "" {
			org.Add(stream.New(NS4, "text").AddText(v))
		} else {
			return nil
		}
		for _, u := range c.Children() {
			if u.Space == NSTemp && u.Local == "ORGUNIT" {
				if v := strings.TrimSpace(u.Text()); v != "" {
					org.Add(stream.New(NS4, "text").AddText(v))
				}
			}
		}
		return org
	case "EMAIL":
		if v := text(c, NSTemp, "USERID"); v != "" {
			return withParams(stream.New(NS4, "email"), c).Add(stream.New(NS4, "text").AddText(v))
		}
	case "TEL":
		v := text(c, NSTemp, "NUMBER")
		if v == "" {
			return nil
		}
		tel := withParams(stream.New(NS4, "tel"), c)
		// A tel: URI where the number is one (RFC 3966 allows digits and
		// visual separators), else the text value RFC 6350 §6.4.1 also
		// allows: "+49 30 1234" must come back to vcard-temp unchanged.
		if strings.Trim(v, "0123456789+-.()*#") == "" {
			return tel.Add(stream.New(NS4, "uri").AddText("tel:" + v))
		}
		return tel.Add(stream.New(NS4, "text").AddText(v))
	case "ADR":
		if adr := withParams(stream.New(NS4, "adr"), c); partsTo4(adr, c, adrParts) {
			return adr
		}
	}
	return nil
}

// partsTo4 adds to the vCard4 property p the components named in parts
// (vcard-temp name, vCard4 name) of the vcard-temp property c: all of
// them, empty ones too (RFC 6351 §10); false when every one is empty.
func partsTo4(p, c *stream.Element, parts [][2]string) bool {
	any := false
	for _, part := range parts {
		v := text(c, NSTemp, part[0])
		any = any || v != ""
		p.Add(stream.New(NS4, part[1]).AddText(v))
	}
	return any
}

// partsToTemp adds to the vcard-temp property t the non-empty components
// named in parts of the vCard4 property p; false when it added none.
func partsToTemp(t, p *stream.Element, parts [][2]string) bool {
	any := false
	for _, part := range parts {
		if v := text(p, NS4, part[1]); v != "" {
			t.Add(stream.New(NSTemp, part[0]).AddText(v))
			any = true
		}
	}
	return any
}

// withParams adds to p the vCard4 parameters for the type flags and PREF
// of the vcard-temp property c.
func withParams(p, c *stream.Element) *stream.Element {
	typ := stream.New(NS4, "type")
	for _, f := range typeFlags[c.Local] {
		if c.Child(NSTemp, f) != nil {
			typ.Add(stream.New(NS4, "text").AddText(strings.ToLower(f)))
		}
	}
	params := stream.New(NS4, "parameters")
	if len(typ.Nodes) > 0 {
		params.Add(typ)
	}
	if c.Child(NSTemp, "PREF") != nil {
		params.Add(stream.New(NS4, "pref").Add(stream.New(NS4, "integer").AddText("1")))
	}
	if len(params.Nodes) > 0 {
		p.Add(params)
	}
	return p
}

// ToTemp is the vcard-temp properties of v4's mapped properties.
func ToTemp(v4 *stream.Element) []*stream.Element {
	var out []*stream.Element
	for _, p := range v4.Children() {
		if p.Space != NS4 {
			continue
		}
		out = append(out, propToTemp(p)...)
	}
	return out
}

func propToTemp(p *stream.Element) []*stream.Element {
	for _, s := range simple {
		if p.Local == s.v4 {
			if v := text(p, NS4, s.value); v != "" {
				return []*stream.Element{stream.New(NSTemp, s.temp).AddText(v)}
			}
			return nil
		}
	}
	var out []*stream.Element
	switch p.Local {
	case "nickname":
		// vCard4 NICKNAME is a list of text values; vcard-temp has one
		// value per element.
		for _, t := range p.Children() {
			if t.Space == NS4 && t.Local == "text" {
				if v := strings.TrimSpace(t.Text()); v != "" {
					out = append(out, stream.New(NSTemp, "NICKNAME").AddText(v))
				}
			}
		}
	case "bday":
		for _, k := range []string{"date", "date-time", "date-and-or-time", "text"} {
			if v := text(p, NS4, k); v != "" {
				return []*stream.Element{stream.New(NSTemp, "BDAY").AddText(v)}
			}
		}
	case "n":
		if n := stream.New(NSTemp, "N"); partsToTemp(n, p, nParts) {
			out = append(out, n)
		}
	case "impp":
		if v, ok := strings.CutPrefix(text(p, NS4, "uri"), "xmpp:"); ok && v != "" {
			out = append(out, stream.New(NSTemp, "JABBERID").AddText(v))
		}
	case "org":
		org := stream.New(NSTemp, "ORG")
		for _, t := range p.Children() {
			if t.Space != NS4 || t.Local != "text" {
				continue
			}
			v := strings.TrimSpace(t.Text())
			if len(org.Nodes) == 0 {
				org.Add(stream.New(NSTemp, "ORGNAME").AddText(v))
			} else if v != "" {
				org.Add(stream.New(NSTemp, "ORGUNIT").AddText(v))
			}
		}
		if org.ChildText(NSTemp, "ORGNAME") != "" {
			out = append(out, org)
		}
	case "email":
		if v := text(p, NS4, "text"); v != "" {
			e := stream.New(NSTemp, "EMAIL")
			addFlags(e, p)
			out = append(out, e.Add(stream.New(NSTemp, "INTERNET"), stream.New(NSTemp, "USERID").AddText(v)))
		}
	case "tel":
		v := text(p, NS4, "text")
		if u := text(p, NS4, "uri"); u != "" {
			v = strings.TrimPrefix(u, "tel:")
		}
		if v != "" {
			t := stream.New(NSTemp, "TEL")
			addFlags(t, p)
			out = append(out, t.Add(stream.New(NSTemp, "NUMBER").AddText(v)))
		}
	case "adr":
		a := stream.New(NSTemp, "ADR")
		addFlags(a, p)
		if partsToTemp(a, p, adrParts) {
			out = append(out, a)
		}
	}
	return out
}

// addFlags adds to the vcard-temp property t the type flags and PREF of
// the vCard4 property p (its name says which flags t can have).
func addFlags(t, p *stream.Element) {
	params := p.Child(NS4, "parameters")
	if params == nil {
		return
	}
	if typ := params.Child(NS4, "type"); typ != nil {
		for _, v := range typ.Children() {
			if v.Space != NS4 || v.Local != "text" {
				continue
			}
			f := strings.ToUpper(strings.TrimSpace(v.Text()))
			for _, ok := range typeFlags[t.Local] {
				if f == ok && t.Child(NSTemp, f) == nil {
					t.Add(stream.New(NSTemp, f))
				}
			}
		}
	}
	// RFC 6350 §5.3: PREF 1 is the most preferred; vcard-temp has only
	// "preferred" or not.
	if pref := params.Child(NS4, "pref"); pref != nil && text(pref, NS4, "integer") == "1" {
		t.Add(stream.New(NSTemp, "PREF"))
	}
}
