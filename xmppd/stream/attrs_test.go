package stream

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/idle"
)

// shortName is a distinct name of at most three characters for each i
// below 62*62*62, so that many attributes fit in few bytes (as the probe's).
func shortName(i int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789"
	name := []byte{chars[i%52]} // a letter first
	for i /= 52; i > 0; i /= 62 {
		name = append(name, chars[i%62])
	}
	return string(name)
}

// attrs returns n attributes " a0=” a1=” …" (prefix p: "p:a0=”").
func attrs(n int, p string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, " %sa%d=''", p, i)
	}
	return b.String()
}

// nsDecls returns n namespace declarations " xmlns:p0='urn:0' …".
func nsDecls(n, from int) string {
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, " xmlns:p%d='urn:%d'", i, i)
	}
	return b.String()
}

func wantCond(t *testing.T, name string, err error, cond string) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) || se.Condition != cond {
		t.Errorf("%s: err = %v, want stream error %s", name, err, cond)
	}
}

// The probe from issue 9: one 253 KB tag with 32,000 attributes. It must
// be refused as a policy violation (it cost 1.9 s of CPU when every pair
// of attributes was compared, then was accepted).
func TestManyAttributesRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("<message")
	for i := range 32000 {
		b.WriteString(" " + shortName(i) + "=''")
	}
	b.WriteString("/>")
	in := hdr + b.String()
	if len(in) > PostAuthLimits.MaxBytes {
		t.Fatalf("probe is %d bytes, over the stanza limit", len(in))
	}
	_, err := events(in, PostAuthLimits, false)
	wantCond(t, "32,000 attributes", err, "policy-violation")
	var se *Error
	if errors.As(err, &se) && !strings.Contains(se.Text, "attributes") {
		t.Errorf("error text %q does not name the attribute limit", se.Text)
	}
}

func TestAttributeLimitBoundaries(t *testing.T) {
	for _, lim := range []Limits{PreAuthLimits, PostAuthLimits, {MaxBytes: 1 << 20, MaxElements: 10, MaxDepth: 4}} {
		max := lim.maxAttrs()
		if max > 256 {
			t.Fatalf("limit %+v allows %d attributes", lim, max)
		}
		// The stanza elements are small enough for the pre-auth byte
		// limit only at its own attribute count; raise bytes so only the
		// attribute limit is tested.
		lim.MaxBytes = 1 << 20
		for _, tc := range []struct {
			name string
			tag  string
			ok   bool
		}{
			{"at the limit", "<message" + attrs(max, "") + "/>", true},
			{"one over", "<message" + attrs(max+1, "") + "/>", false},
			// Namespace declarations are attributes too.
			{"declarations at the limit", "<message" + nsDecls(max/8, 0) + attrs(max-max/8, "p0:") + "/>", true},
			{"declarations one over", "<message" + nsDecls(max/8+1, 0) + attrs(max-max/8, "p0:") + "/>", false},
			{"default declaration counts", "<message xmlns='jabber:client'" + attrs(max, "") + "/>", false},
			// The bindings in scope in one stanza are capped at a
			// quarter of that: each element below is within the
			// limit, their sum is not.
			{"declarations in scope at the limit", "<message" + nsDecls(max/8, 0) + "><x" + nsDecls(max/4-max/8, max) + "/></message>", true},
			{"declarations in scope over", "<message" + nsDecls(max/8, 0) + "><x" + nsDecls(max/4-max/8+1, max) + "/></message>", false},
			{"declarations in one element over", "<message" + nsDecls(max/4+1, 0) + "/>", false},
			// Siblings' bindings end with them and do not add up.
			{"siblings' declarations", "<message><x" + nsDecls(max/4, 0) + "/><x" + nsDecls(max/4, 0) + "/></message>", true},
		} {
			for _, oneByte := range []bool{false, true} {
				evs, err := events(hdr+tc.tag+"</stream:stream>", lim, oneByte)
				if tc.ok {
					if err != io.EOF || len(evs) != 3 {
						t.Errorf("%d attrs, %s (oneByte=%v): %d events, err %v; want accepted", max, tc.name, oneByte, len(evs), err)
					}
					continue
				}
				wantCond(t, fmt.Sprintf("%d attrs, %s (oneByte=%v)", max, tc.name, oneByte), err, "policy-violation")
			}
		}
	}
}

// The bindings a stanza made end with it: the next stanza starts with
// only the header's in scope again.
func TestDeclarationsInScopeAreCountedPerStanza(t *testing.T) {
	max := PostAuthLimits.maxNSInScope()
	one := "<message" + nsDecls(max, 0) + "/>"
	evs, err := events(hdr+one+one+one+"</stream:stream>", PostAuthLimits, false)
	if err != io.EOF || len(evs) != 5 {
		t.Fatalf("%d events, err %v", len(evs), err)
	}
}

// Duplicates are found on both sides of the switch from comparing pairs to
// sorting, as written and after prefixes are resolved.
func TestDuplicateAttributesAnyCount(t *testing.T) {
	for _, n := range []int{4, smallAttrs, smallAttrs + 1, 200} {
		cases := map[string]string{
			"same name":        "<message" + attrs(n-1, "") + " a0='x'/>",
			"same first last":  "<message a0='x'" + attrs(n-1, "")[len(" a0=''"):] + " a0='y'/>",
			"same declaration": "<message xmlns:q='urn:q'" + attrs(n-2, "") + " xmlns:q='urn:r'/>",
			"same expanded":    "<message xmlns:a='urn:x' xmlns:b='urn:x'" + attrs(n-3, "a:") + " b:a0='2'/>",
		}
		for name, tag := range cases {
			_, err := events(hdr+tag, PostAuthLimits, false)
			wantCond(t, fmt.Sprintf("%s, %d attributes", name, n), err, "not-well-formed")
		}
		// And no false duplicates: distinct names, distinct namespaces.
		ok := "<message xmlns:a='urn:x' xmlns:b='urn:y'" + attrs(n/3, "a:") + attrs(n/3, "b:") + attrs(n/3, "") + "/>"
		evs, err := events(hdr+ok+"</stream:stream>", PostAuthLimits, false)
		if err != io.EOF || len(evs) != 3 {
			t.Errorf("distinct attributes, %d: err %v", n, err)
		} else if got := len(evs[1].El.Attr); got != 3*(n/3) {
			t.Errorf("distinct attributes, %d: kept %d", n, got)
		}
	}
}

// A stanza's usual elements parse without a heap allocation for their
// attributes beyond the element and its Attr slice.
func TestSmallTagAllocations(t *testing.T) {
	in := []byte(hdr + "<message to='a@b' from='c@d/r' type='chat' id='x1' xml:lang='en'/>")
	p := NewParser(nil, PostAuthLimits)
	allocs := testing.AllocsPerRun(100, func() {
		*p = Parser{r: strings.NewReader(string(in)), lim: PostAuthLimits}
		p.Next()
		p.Next()
	})
	// 28 before issue 9's split of startTag (the Attr slice grew by
	// append), 23 after; this keeps it from growing again.
	if allocs > 23 {
		t.Errorf("%v allocations for a header and a five-attribute stanza", allocs)
	}
}

func TestOneXMLDeclaration(t *testing.T) {
	decl := "<?xml version='1.0'?>"
	body := hdr[len(decl):] // the header without its declaration
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"none", body, true},
		{"one", decl + body, true},
		{"white space first", "\n" + decl + body, true},
		{"two", decl + decl + body, false},
		{"two with white space", decl + "\n" + decl + body, false},
	} {
		for _, oneByte := range []bool{false, true} {
			evs, err := events(tc.in+"</stream:stream>", PreAuthLimits, oneByte)
			if tc.ok {
				if err != io.EOF || len(evs) != 2 {
					t.Errorf("%s (oneByte=%v): err %v", tc.name, oneByte, err)
				}
				continue
			}
			wantCond(t, fmt.Sprintf("%s (oneByte=%v)", tc.name, oneByte), err, "restricted-xml")
		}
	}
	// A restarted stream (after SASL) has its own declaration.
	p := NewParser(strings.NewReader(hdr+"<auth/>"+hdr+"<iq/>"), PreAuthLimits)
	p.Next()
	p.Next()
	p.Restart()
	if ev, err := p.Next(); err != nil || ev.Kind != Open {
		t.Fatalf("restarted stream with its declaration: %v, %v", ev, err)
	}
}

// A self-closed stream header is an empty stream: Close follows Open at
// once, without another read (it used to wait for the auth timeout).
func TestSelfClosedHeader(t *testing.T) {
	self := strings.TrimSuffix(hdr, ">") + "/>"
	r := &chunkReader{chunks: []string{self}}
	p := NewParser(r, PreAuthLimits)
	if ev, err := p.Next(); err != nil || ev.Kind != Open {
		t.Fatalf("header: %v, %v", ev, err)
	}
	ev, err := p.Next()
	if err == idle.ErrWouldBlock {
		t.Fatal("self-closed header: the parser waits for more bytes instead of ending the stream")
	}
	if err != nil || ev.Kind != Close {
		t.Fatalf("after a self-closed header: %v, %v; want Close", ev, err)
	}
	if p.Partial() {
		t.Fatal("Partial after the stream ended")
	}
	// Anything after it is still an error, not a second stream.
	r.chunks = []string{"<message/>"}
	_, err = p.Next()
	wantCond(t, "data after a self-closed header", err, "not-well-formed")
}

// BenchmarkManyAttributes parses one element with n attributes; its time
// per op should grow about linearly in n (it grew quadratically before
// issue 9). The limit is raised so the cost of the check itself is shown.
func BenchmarkManyAttributes(b *testing.B) {
	for _, n := range []int{8, 64, 256, 1024, 4096, 32000} {
		for _, pre := range []string{"", "p:"} {
			in := hdr + "<message xmlns:p='urn:p'" + attrs(n, pre) + "/>"
			lim := Limits{MaxBytes: 1 << 20, MaxElements: 10, MaxDepth: 4, MaxAttrs: n + 1}
			b.Run(fmt.Sprintf("n=%d/prefix=%q", n, pre), func(b *testing.B) {
				b.SetBytes(int64(len(in)))
				for b.Loop() {
					p := NewParser(strings.NewReader(in), lim)
					p.Next()
					if ev, err := p.Next(); err != nil || ev.Kind != Stanza {
						b.Fatal(err)
					}
				}
			})
		}
	}
	// The probe as the server sees it: refused at the limit.
	in := hdr + "<message" + attrs(32000, "") + "/>"
	b.Run("probe-refused", func(b *testing.B) {
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			p := NewParser(strings.NewReader(in), PostAuthLimits)
			p.Next()
			if _, err := p.Next(); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}

// BenchmarkPrefixLookups parses the worst stanza for prefix lookups within
// the limits (every attribute names a prefix bound at the stanza's root,
// behind the most bindings allowed in scope) beside a plain stanza of the
// same size: their costs per byte should stay within a small factor.
func BenchmarkPrefixLookups(b *testing.B) {
	lim := PostAuthLimits
	n := lim.maxNSInScope()
	var sb strings.Builder
	sb.WriteString("<message" + nsDecls(n, 0) + ">")
	child := "<x" + attrs(lim.maxAttrs()-1, "p0:") + "/>"
	for sb.Len()+len(child) < lim.MaxBytes-20 {
		sb.WriteString(child)
	}
	sb.WriteString("</message>")
	body := "<body>hello world, this is some text</body>"
	plain := "<message>" + strings.Repeat(body, min((lim.MaxBytes-20)/len(body), lim.MaxElements/2-1)) + "</message>"
	for _, c := range []struct{ name, in string }{{"worst", hdr + sb.String()}, {"plain", hdr + plain}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				p := NewParser(strings.NewReader(c.in), lim)
				p.Next()
				if ev, err := p.Next(); err != nil || ev.Kind != Stanza {
					b.Fatal(err)
				}
			}
		})
	}
}
