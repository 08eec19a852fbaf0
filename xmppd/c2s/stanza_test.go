package c2s_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
)

// After authentication a stanza has StanzaTimeout from its first byte to
// its last. An unfinished one was held forever (a probe: +2.8 MiB RSS per
// connection for a 208 KB partial stanza). Idle time between stanzas does
// not count, for parked connections (no goroutine: the timer ends them)
// and for ones that keep a reader goroutine alike.
func TestUnfinishedStanzaTimesOut(t *testing.T) {
	const bound = 500 * time.Millisecond
	for _, park := range []bool{true, false} {
		name := "parked"
		if !park {
			name = "reader goroutine"
		}
		t.Run(name, func(t *testing.T) {
			d := xmpptest.Start(t, func(o *xmppd.Options) {
				o.StanzaTimeout = bound
				o.NoParking = !park
			})
			// Idle between stanzas for longer than the bound: untouched.
			idle := xmpptest.Login(t, d, "bob", "idle")
			c := xmpptest.Login(t, d, "alice", "slow")
			time.Sleep(2 * bound)
			c.Send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
			if el := c.El(); el.Get("id") != "p1" {
				t.Fatalf("after idling: %s", el)
			}
			// A stanza sent in pieces within the bound: fine.
			c.Send("<message to='bob@" + xmpptest.Domain + "/idle'><body>")
			time.Sleep(bound / 3)
			c.Send("in pieces</body></message>")
			if el := idle.El(); el.ChildText("", "body") != "in pieces" {
				t.Fatalf("bob got %s", el)
			}
			// Then one that never ends.
			began := time.Now()
			c.Send("<message to='bob@" + xmpptest.Domain + "/idle'><body>" + strings.Repeat("x", 100<<10))
			c.StreamError("policy-violation")
			if took := time.Since(began); took < bound-50*time.Millisecond || took > bound+10*time.Second {
				t.Fatalf("closed %v after the stanza began, want about %v", took, bound)
			}
			// The idle session is still there.
			idle.Send("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
			if el := idle.El(); el.Get("id") != "p2" {
				t.Fatalf("idle session: %s", el)
			}
		})
	}
}

// The bound costs an idle session nothing: no goroutine while parked,
// whether or not it is between stanzas (the timer is a runtime timer, not
// a goroutine).
func TestStanzaClockKeepsParkedSessionsGoroutineFree(t *testing.T) {
	d := xmpptest.Start(t, func(o *xmppd.Options) { o.StanzaTimeout = time.Minute })
	var cs []*xmpptest.Client
	for i := 0; i < 10; i++ {
		cs = append(cs, xmpptest.Login(t, d, "bob", "r"+string(rune('a'+i))))
	}
	// Settled: every login's goroutines have parked or ended.
	before := settledGoroutines()
	for _, c := range cs {
		c.Send("<message to='alice@" + xmpptest.Domain + "'><body>half")
	}
	// Each read wakes a goroutine that parks again; wait for that rather
	// than guess how long it takes (slow under -race).
	deadline := time.Now().Add(10 * time.Second)
	for {
		grown := runtime.NumGoroutine() - before
		if grown <= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 sessions parked mid-stanza hold %d more goroutines", grown)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settledGoroutines waits until the goroutine count stops changing.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for i := 0; i < 100; i++ {
		time.Sleep(50 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return m
		}
		n = m
	}
	return n
}
