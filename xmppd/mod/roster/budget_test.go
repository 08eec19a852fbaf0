package roster_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/session"
)

// TestRosterBudgetOverTheWire: items as big as one set allows (a 1 KiB
// name, 64 groups of 1 KiB: 66 KiB each) are refused with
// resource-constraint once the roster's byte budget is spent, and the
// fullest roster still comes back whole in one result on a session that
// stays open. Before the budget a probe stored 1,000 such items (66 MB);
// one get took RSS from 90 to 390 MB and closed the session without a
// stream error because the result exceeded the write queue.
func TestRosterBudgetOverTheWire(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a := login(t, d, "alice", "a")
	long := func(c byte, i int) string { return fmt.Sprintf("%03d", i) + strings.Repeat(string(c), 1021) }
	var groups strings.Builder
	for g := range 64 {
		groups.WriteString("<group>" + long('g', g) + "</group>")
	}
	refused := -1
	// 512 KiB / 66 KiB: the 8th item at the latest; 20 bounds the loop
	// should the budget be missing.
	for i := range 20 {
		id := fmt.Sprintf("s%d", i)
		a.Sendf("<iq type='set' id='%s'><query xmlns='jabber:iq:roster'><item jid='c%d@example.test' name='%s'>%s</item></query></iq>",
			id, i, long('n', i), groups.String())
		r := a.Expect("set result", result(id))
		if r.Get("type") == "error" {
			if c := errCond(r); c != "resource-constraint" {
				t.Fatalf("item %d: %s", i, c)
			}
			refused = i
			break
		}
	}
	if refused < 1 {
		t.Fatalf("no item refused among 20 of 66 KiB (refused at %d)", refused)
	}
	a.Send("<iq type='get' id='get'><query xmlns='jabber:iq:roster'/></iq>")
	r := a.Expect("roster result", result("get"))
	if n := len(r.Child(ns, "query").Children()); n != refused {
		t.Fatalf("roster has %d items, %d were accepted", n, refused)
	}
	if size := len(r.String()); size > session.MaxQueue/2 || size > roster.MaxBytes+1024 {
		t.Fatalf("roster result of %d bytes: past half the write queue (%d) or the budget (%d)", size, session.MaxQueue/2, roster.MaxBytes)
	}
	// The session is still there.
	a.Send("<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>")
	if p := a.Expect("ping result", result("ping")); p.Get("type") != "result" {
		t.Fatalf("ping: %s", p)
	}
}

// TestOversizeRosterRefusedNotFatal: a roster stored before the budget
// (here 600 KiB) is not sent — it would not fit the write queue next to
// other traffic — but refused with resource-constraint on a session that
// stays open, and items can still be removed until it fits again.
func TestOversizeRosterRefusedNotFatal(t *testing.T) {
	d := xmpptest.Start(t, nil)
	roster.PutOverBudget(t, d.Server, "alice", 600, 1000)
	a := login(t, d, "alice", "a")
	a.Send("<iq type='get' id='get'><query xmlns='jabber:iq:roster'/></iq>")
	if r := a.Expect("roster answer", result("get")); errCond(r) != "resource-constraint" {
		t.Fatalf("oversize roster: %.300s", r)
	}
	for i := range 200 {
		id := fmt.Sprintf("rm%d", i)
		a.Sendf("<iq type='set' id='%s'><query xmlns='jabber:iq:roster'><item jid='old%d@example.test' subscription='remove'/></query></iq>", id, i)
		if r := a.Expect("remove", result(id)); r.Get("type") != "result" {
			t.Fatalf("remove %d: %s", i, r)
		}
	}
	a.Send("<iq type='get' id='get2'><query xmlns='jabber:iq:roster'/></iq>")
	r := a.Expect("roster result", result("get2"))
	if n := len(r.Child(ns, "query").Children()); r.Get("type") != "result" || n != 400 {
		t.Fatalf("after removals: type %s, %d items", r.Get("type"), n)
	}
}
