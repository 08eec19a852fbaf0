package ws

import (
	"strings"
	"testing"
)

// TestOutFramesAnyChunking: however c2s's writes are cut, the messages
// are the same: <open/>, one per element with its namespaces declared,
// <close/>; nothing is kept once a write is whole.
func TestOutFramesAnyChunking(t *testing.T) {
	in := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='example.test' version='1.0' xml:lang='en' id='x1'>" +
		"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>" +
		"<message to='a@example.test' id='q&apos;>'><body>1 &gt; 0</body><x xmlns='urn:x'/></message>" +
		"<r xmlns='urn:xmpp:sm:3'/>" +
		"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
	want := []string{
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.test' version='1.0' xml:lang='en' id='x1'/>",
		"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
		"<message xmlns='jabber:client' to='a@example.test' id='q&apos;>'><body>1 &gt; 0</body><x xmlns='urn:x'/></message>",
		"<r xmlns='urn:xmpp:sm:3'/>",
		"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
		"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
	}
	for _, chunk := range []int{len(in), 1, 7, 64} {
		var o outFrames
		var got []string
		for i := 0; i < len(in); i += chunk {
			if err := o.split([]byte(in[i:min(i+chunk, len(in))]), func(m []byte) error {
				got = append(got, string(m))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("chunks of %d:\n%s\nwant\n%s", chunk, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if o.carry != nil {
			t.Fatalf("chunks of %d: %d bytes kept after whole writes", chunk, len(o.carry))
		}
	}
}

func TestFrameCheck(t *testing.T) {
	for in, ok := range map[string]bool{
		"<message><body>a</body></message>":            true,
		" <presence/>\n":                               true,
		"<iq a='>' b=\"/>\"><query/></iq>":             true,
		"<presence/><presence/>":                       false,
		"<message><body>a</body></message><presence/>": false,
		"<message><body>a</body>":                      false,
		"<presence/>text":                              false,
		"   ":                                          false,
		"<?xml version='1.0'?><presence/>":             false,
		"</message>":                                   false,
		"<message><body>a</body></message></message>":  false,
	} {
		var f frameCheck
		err := f.feed([]byte(in))
		if err == nil {
			err = f.end()
		}
		if (err == nil) != ok {
			t.Errorf("%q: %v, want ok=%v", in, err, ok)
		}
	}
}
