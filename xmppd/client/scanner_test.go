package client

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

type item struct {
	k kind
	s string
}

func scanAll(t *testing.T, in string) ([]item, error) {
	t.Helper()
	// A tiny buffer makes items straddle reads.
	sc := newScanner(bufio.NewReaderSize(strings.NewReader(in), 16))
	var out []item
	for i := 0; i < 100; i++ {
		k, b, err := sc.next()
		if err != nil {
			return out, err
		}
		out = append(out, item{k, string(b)})
	}
	t.Fatal("scanner did not stop")
	return nil, nil
}

func TestScanner(t *testing.T) {
	hdr := "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>"
	tests := []struct {
		name string
		in   string
		want []item
	}{
		{"header with declaration and features",
			"<?xml version='1.0'?>" + hdr + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
			[]item{{kindHeader, hdr}, {kindStanza, "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>"}}},
		{"whitespace keepalives dropped, text kept inside",
			hdr + "\n \n<message><body> a b </body></message>\n",
			[]item{{kindHeader, hdr}, {kindStanza, "<message><body> a b </body></message>"}}},
		{"self-closing top level",
			hdr + "<presence/><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
			[]item{{kindHeader, hdr}, {kindStanza, "<presence/>"}, {kindStanza, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"}}},
		{"> and / inside attribute values",
			hdr + `<message to="a/b>c" id='x/>y'><body>1</body></message>`,
			[]item{{kindHeader, hdr}, {kindStanza, `<message to="a/b>c" id='x/>y'><body>1</body></message>`}}},
		{"CDATA and comment inside a stanza",
			hdr + "<message><body><![CDATA[</body><x/>]]></body><!-- c>< --></message>",
			[]item{{kindHeader, hdr}, {kindStanza, "<message><body><![CDATA[</body><x/>]]></body><!-- c>< --></message>"}}},
		{"stream end",
			hdr + "<iq type='result' id='1'/></stream:stream>",
			[]item{{kindHeader, hdr}, {kindStanza, "<iq type='result' id='1'/>"}, {kindEnd, "</stream:stream>"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scanAll(t, tt.in)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("err = %v, want EOF", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d items %v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("item %d = %v %q, want %v %q", i, got[i].k, got[i].s, tt.want[i].k, tt.want[i].s)
				}
			}
		})
	}
}

func TestScannerLimits(t *testing.T) {
	hdr := "<stream:stream xmlns='jabber:client'>"
	if _, err := scanAll(t, hdr+"<message><body>"+strings.Repeat("a", maxItem+1)); !errors.Is(err, errTooLarge) {
		t.Fatalf("oversized stanza: err = %v, want errTooLarge", err)
	}
	if _, err := scanAll(t, hdr+"</a></b>"); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("unbalanced close: err = %v", err)
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"<message to='x'>":   "message",
		"<presence/>":        "presence",
		"<iq\ttype='get'>":   "iq",
		"<stream:error><x/>": "error",
		"message":            "",
	} {
		if got := Name([]byte(in)); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}
