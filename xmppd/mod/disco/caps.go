package disco

import (
	"cmp"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"strings"

	"github.com/hearthchat/hearth/xmppd/stream"
)

const nsData = "jabber:x:data"

// Ver computes the XEP-0115 §5.1 verification string (SHA-1, base64) of a
// disco#info <query/> element.
//
// We hash our own element tree instead of using mellium.im/xmpp/disco's
// Info.Hash: that one needs the reply converted into its encoding/xml
// types (form.Data has no exported way to be built from XML we already
// hold), it does not sort several forms by FORM_TYPE nor skip forms whose
// FORM_TYPE is not hidden (§5.4 step 3.6), and it panics on a form with
// no fields (a negative slice capacity). The tests check both agree on
// form-less input.
func Ver(q *stream.Element) string {
	var s strings.Builder
	type identity struct{ cat, typ, lang, name string }
	var ids []identity
	var features []string
	type form struct {
		typ    string
		fields [][]string // var, then the sorted values
	}
	var forms []form
	for _, c := range q.Children() {
		switch {
		case c.Space == NSInfo && c.Local == "identity":
			ids = append(ids, identity{c.Get("category"), c.Get("type"), c.Lang(), c.Get("name")})
		case c.Space == NSInfo && c.Local == "feature":
			features = append(features, c.Get("var"))
		case c.Space == nsData && c.Local == "x":
			f, ok := formOf(c)
			if ok {
				forms = append(forms, form{f[0][0], f[1:]})
			}
		}
	}
	// §5.1 steps 2-6: identities by category, type, xml:lang; then
	// features; all with i;octet collation, which Go's byte-wise string
	// comparison is.
	slices.SortFunc(ids, func(a, b identity) int {
		return cmp.Or(cmp.Compare(a.cat, b.cat), cmp.Compare(a.typ, b.typ), cmp.Compare(a.lang, b.lang), cmp.Compare(a.name, b.name))
	})
	for _, id := range ids {
		s.WriteString(id.cat + "/" + id.typ + "/" + id.lang + "/" + id.name + "<")
	}
	slices.Sort(features)
	for _, f := range features {
		s.WriteString(f + "<")
	}
	// Step 7: forms by FORM_TYPE, fields by var, values sorted.
	slices.SortFunc(forms, func(a, b form) int { return cmp.Compare(a.typ, b.typ) })
	for _, f := range forms {
		s.WriteString(f.typ + "<")
		for _, fl := range f.fields {
			for _, v := range fl {
				s.WriteString(v + "<")
			}
		}
	}
	sum := sha1.Sum([]byte(s.String()))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// formOf returns a form's FORM_TYPE as the first entry and then each other
// field as var followed by its sorted values, fields sorted by var. ok is
// false for forms that do not count (no hidden FORM_TYPE).
func formOf(x *stream.Element) (out [][]string, ok bool) {
	var formType []string
	var fields [][]string
	for _, f := range x.Children() {
		if f.Space != nsData || f.Local != "field" {
			continue
		}
		var vals []string
		for _, v := range f.Children() {
			if v.Space == nsData && v.Local == "value" {
				vals = append(vals, v.Text())
			}
		}
		if f.Get("var") == "FORM_TYPE" {
			if f.Get("type") != "hidden" || len(vals) == 0 {
				return nil, false
			}
			formType = []string{vals[0]}
			continue
		}
		slices.Sort(vals)
		fields = append(fields, append([]string{f.Get("var")}, vals...))
	}
	if formType == nil {
		return nil, false
	}
	slices.SortFunc(fields, func(a, b []string) int { return cmp.Compare(a[0], b[0]) })
	return append([][]string{formType}, fields...), true
}
