package s2s

import (
	"runtime"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// A queued stanza keeps only its wire bytes (jabber:server); its bounce
// reads them back. The tree read back must be the one handed over, in
// jabber:client, other namespaces untouched, text and attributes escaped
// as they were.
func TestUnwireRoundTrip(t *testing.T) {
	for _, in := range []string{
		`<message xmlns='jabber:client' to='bob@dead.test' from='alice@a.test/r' type='chat' id='d1'><body>message 1 &amp; &lt;more&gt; "quoted" 'x'</body></message>`,
		`<message xmlns='jabber:client' to='room@groups.b.test' type='groupchat' id='g'><body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/><x xmlns='jabber:x:oob'><url>https://a.test/f?a=1&amp;b=2</url></x></message>`,
		`<presence xmlns='jabber:client' to='room@groups.b.test/nick'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>`,
		`<iq xmlns='jabber:client' to='b.test' type='get' id='q1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
		`<message xmlns='jabber:client' to='bob@b.test' id='e'><body xml:lang='de'>Grüße 😀</body><foo:bar xmlns:foo='urn:example:foo' foo:attr='1'/></message>`,
	} {
		el, err := stream.ParseElement([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		want := string(el.Append(nil, stream.NSClient))
		wire := rename(el, stream.NSClient, NSServer).Append(nil, NSServer)
		back, err := unwire(wire)
		if err != nil {
			t.Fatalf("%s: unwire %s: %v", in, wire, err)
		}
		if got := string(back.Append(nil, stream.NSClient)); got != want {
			t.Errorf("round trip through %s:\n got %s\nwant %s", wire, got, want)
		}
		if back.Space != stream.NSClient {
			t.Errorf("%s: read back in %q", in, back.Space)
		}
	}
}

// What a queue holds for a stanza beyond the bytes its caps count
// (Config.MaxQueueBytes, MaxTotalBytes) is small and fixed, so the caps
// bound its memory. When the queue kept a copy of the stanza's tree
// instead of its wire bytes, a short message cost 5 times what it counted
// (about 580 bytes beyond its 123).
func TestQueuedMemory(t *testing.T) {
	const n = 1000
	el, err := stream.ParseElement([]byte(`<message xmlns='jabber:client' to='bob@dead.test' type='chat' id='d1'><body>message 1 to a dead domain</body></message>`))
	if err != nil {
		t.Fatal(err)
	}
	from, to := jid.MustParse("alice@a.test/r"), jid.MustParse("bob@dead.test")
	q := make([]queued, 0, n) // the queue's slice: not what is measured
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	h0 := heap()
	counted := 0
	for range n {
		x := queuedOf(&server.Stanza{El: el, From: from, To: to})
		counted += x.size
		q = append(q, x)
	}
	h1 := heap()
	per := (h1 - h0 - int64(counted)) / n
	t.Logf("%d queued: %d bytes counted, %d live; %d bytes each beyond its count", n, counted, h1-h0, per)
	if per > 256 {
		t.Errorf("a queued stanza costs %d bytes beyond the %d its caps count", per, counted/n)
	}
	runtime.KeepAlive(q)
}
