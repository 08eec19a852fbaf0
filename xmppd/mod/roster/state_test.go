package roster

import (
	"strings"
	"testing"
)

// parseState reads the notation of RFC 6121 Appendix A: "none", "to",
// "from", "both", plus "+out" (pending out), "+in" (pending in) and
// "+approved".
func parseState(t *testing.T, s string) Item {
	t.Helper()
	parts := strings.Split(s, "+")
	it := Item{JID: "contact@example.test", Listed: true}
	switch parts[0] {
	case "none":
	case "to":
		it.Sub = To
	case "from":
		it.Sub = From
	case "both":
		it.Sub = Both
	default:
		t.Fatalf("bad state %q", s)
	}
	for _, p := range parts[1:] {
		switch p {
		case "out":
			it.Ask = true
		case "in":
			it.PendingIn = true
			it.Request = []byte("<presence/>")
		case "approved":
			it.Approved = true
		default:
			t.Fatalf("bad state %q", s)
		}
	}
	return it
}

func stateString(it Item) string {
	s := it.Sub.String()
	if it.Ask {
		s += "+out"
	}
	if it.PendingIn {
		s += "+in"
	}
	if it.Approved {
		s += "+approved"
	}
	return s
}

// outcome letters: f forward, a auto-reply subscribed, p send presence,
// u send unavailable; "-" for nothing.
func outcomeString(o Outcome) string {
	s := ""
	if o.Forward {
		s += "f"
	}
	if o.AutoReply {
		s += "a"
	}
	if o.SendPresence {
		s += "p"
	}
	if o.SendUnavailable {
		s += "u"
	}
	if s == "" {
		return "-"
	}
	return s
}

// TestApply walks every state of RFC 6121 Appendix A through every
// subscription stanza in both directions.
func TestApply(t *testing.T) {
	cases := []struct {
		ev   Event
		from string
		to   string
		out  string
	}{
		// A.2.1 outbound subscribe: always routed; ask set unless
		// already subscribed.
		{OutSubscribe, "none", "none+out", "f"},
		{OutSubscribe, "none+out", "none+out", "f"},
		{OutSubscribe, "none+in", "none+out+in", "f"},
		{OutSubscribe, "none+out+in", "none+out+in", "f"},
		{OutSubscribe, "to", "to", "f"},
		{OutSubscribe, "to+in", "to+in", "f"},
		{OutSubscribe, "from", "from+out", "f"},
		{OutSubscribe, "from+out", "from+out", "f"},
		{OutSubscribe, "both", "both", "f"},
		// A.2.2 outbound unsubscribe.
		{OutUnsubscribe, "none", "none", "f"},
		{OutUnsubscribe, "none+out", "none", "f"},
		{OutUnsubscribe, "none+in", "none+in", "f"},
		{OutUnsubscribe, "none+out+in", "none+in", "f"},
		{OutUnsubscribe, "to", "none", "f"},
		{OutUnsubscribe, "to+in", "none+in", "f"},
		{OutUnsubscribe, "from", "from", "f"},
		{OutUnsubscribe, "from+out", "from", "f"},
		{OutUnsubscribe, "both", "from", "f"},
		// A.2.3 outbound subscribed: approves a pending request, else
		// pre-approves (§3.4, not routed).
		{OutSubscribed, "none", "none+approved", "-"},
		{OutSubscribed, "none+out", "none+out+approved", "-"},
		{OutSubscribed, "none+in", "from", "fp"},
		{OutSubscribed, "none+out+in", "from+out", "fp"},
		{OutSubscribed, "to", "to+approved", "-"},
		{OutSubscribed, "to+in", "both", "fp"},
		{OutSubscribed, "from", "from", "-"},
		{OutSubscribed, "from+out", "from+out", "-"},
		{OutSubscribed, "both", "both", "-"},
		{OutSubscribed, "none+approved", "none+approved", "-"},
		// A.2.4 outbound unsubscribed: denies or cancels.
		{OutUnsubscribed, "none", "none", "-"},
		{OutUnsubscribed, "none+out", "none+out", "-"},
		{OutUnsubscribed, "none+in", "none", "f"},
		{OutUnsubscribed, "none+out+in", "none+out", "f"},
		{OutUnsubscribed, "to", "to", "-"},
		{OutUnsubscribed, "to+in", "to", "f"},
		{OutUnsubscribed, "from", "none", "fu"},
		{OutUnsubscribed, "from+out", "none+out", "fu"},
		{OutUnsubscribed, "both", "to", "fu"},
		{OutUnsubscribed, "none+approved", "none", "-"},
		{OutUnsubscribed, "to+approved", "to", "-"},
		// A.3.1 inbound subscribe.
		{InSubscribe, "none", "none+in", "f"},
		{InSubscribe, "none+out", "none+out+in", "f"},
		{InSubscribe, "none+in", "none+in", "-"},
		{InSubscribe, "none+out+in", "none+out+in", "-"},
		{InSubscribe, "to", "to+in", "f"},
		{InSubscribe, "to+in", "to+in", "-"},
		{InSubscribe, "from", "from", "a"},
		{InSubscribe, "from+out", "from+out", "a"},
		{InSubscribe, "both", "both", "a"},
		{InSubscribe, "none+approved", "from", "ap"},
		{InSubscribe, "none+out+approved", "from+out", "ap"},
		{InSubscribe, "to+approved", "both", "ap"},
		// A.3.2 inbound unsubscribe.
		{InUnsubscribe, "none", "none", "-"},
		{InUnsubscribe, "none+out", "none+out", "-"},
		{InUnsubscribe, "none+in", "none", "f"},
		{InUnsubscribe, "none+out+in", "none+out", "f"},
		{InUnsubscribe, "to", "to", "-"},
		{InUnsubscribe, "to+in", "to", "f"},
		{InUnsubscribe, "from", "none", "fu"},
		{InUnsubscribe, "from+out", "none+out", "fu"},
		{InUnsubscribe, "both", "to", "fu"},
		// A.3.3 inbound subscribed: only answers our own request.
		{InSubscribed, "none", "none", "-"},
		{InSubscribed, "none+out", "to", "f"},
		{InSubscribed, "none+in", "none+in", "-"},
		{InSubscribed, "none+out+in", "to+in", "f"},
		{InSubscribed, "to", "to", "-"},
		{InSubscribed, "to+in", "to+in", "-"},
		{InSubscribed, "from", "from", "-"},
		{InSubscribed, "from+out", "both", "f"},
		{InSubscribed, "both", "both", "-"},
		// A.3.4 inbound unsubscribed.
		{InUnsubscribed, "none", "none", "-"},
		{InUnsubscribed, "none+out", "none", "f"},
		{InUnsubscribed, "none+in", "none+in", "-"},
		{InUnsubscribed, "none+out+in", "none+in", "f"},
		{InUnsubscribed, "to", "none", "f"},
		{InUnsubscribed, "to+in", "none+in", "f"},
		{InUnsubscribed, "from", "from", "-"},
		{InUnsubscribed, "from+out", "from", "f"},
		{InUnsubscribed, "both", "from", "f"},
	}
	seen := map[Event]map[string]bool{}
	for _, c := range cases {
		it := parseState(t, c.from)
		o := Apply(&it, c.ev)
		if got := stateString(it); got != c.to {
			t.Errorf("%s in %s: state %s, want %s", c.ev, c.from, got, c.to)
		}
		if got := outcomeString(o); got != c.out {
			t.Errorf("%s in %s: outcome %s, want %s", c.ev, c.from, got, c.out)
		}
		if !it.PendingIn && it.Request != nil {
			t.Errorf("%s in %s: stored request kept without pending-in", c.ev, c.from)
		}
		if seen[c.ev] == nil {
			seen[c.ev] = map[string]bool{}
		}
		seen[c.ev][c.from] = true
	}
	// Every event is tested in all nine states of Appendix A.
	for ev := OutSubscribe; ev <= InUnsubscribed; ev++ {
		for _, s := range []string{"none", "none+out", "none+in", "none+out+in", "to", "to+in", "from", "from+out", "both"} {
			if !seen[ev][s] {
				t.Errorf("no case for %s in %s", ev, s)
			}
		}
	}
}

func TestEventFor(t *testing.T) {
	for _, typ := range []string{"subscribe", "subscribed", "unsubscribe", "unsubscribed"} {
		out, ok1 := EventFor(typ, true)
		in, ok2 := EventFor(typ, false)
		if !ok1 || !ok2 || !strings.HasSuffix(out.String(), " "+typ) || in.String() != "in "+typ || out.String() != "out "+typ {
			t.Errorf("%s: %v %v", typ, out, in)
		}
	}
	if _, ok := EventFor("probe", true); ok {
		t.Error("probe is not a subscription event")
	}
}
