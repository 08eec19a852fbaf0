package s2s_test

import (
	"testing"

	"github.com/hearthchat/hearth/xmppd/s2s"
)

// Our dialback answers are written <db:result/> and <db:verify/>:
// ejabberd 23.01 recognises dialback elements only by that written name
// (TestEjabberdDialback, e2e, covers our outbound side against it).
func TestDialbackPrefix(t *testing.T) {
	w := newWorld(t)
	a := w.start(t, "a.test", nil, nil)
	w.start(t, "b.test", nil, nil)

	p := dialPeer(t, a, "b.test")
	p.starttls("b.test", "a.test", nil)
	p.Send("<db:result from='b.test' to='a.test'>" + s2s.Key([]byte("guess"), "a.test", "b.test", p.id) + "</db:result>")
	if el := p.El(); el.Local != "result" || el.Space != s2s.NSDialback || el.Prefix != "db" {
		t.Errorf("dialback result written as %s (prefix %q), want <db:result/>", el, el.Prefix)
	}

	v := dialPeer(t, a, "b.test")
	v.starttls("b.test", "a.test", nil)
	v.Send("<db:verify from='b.test' to='a.test' id='x'>0000</db:verify>")
	if el := v.El(); el.Local != "verify" || el.Space != s2s.NSDialback || el.Prefix != "db" || el.Get("type") != "invalid" {
		t.Errorf("dialback verify answer written as %s (prefix %q), want <db:verify type='invalid'/>", el, el.Prefix)
	}
}
