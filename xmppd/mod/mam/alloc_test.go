package mam

import (
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/stream"
)

// What archiving one message allocates (garbage collection was a fifth of
// the server's CPU at saturation with the archive on, and the archive's
// hook made more than a quarter of the garbage): a chat message from one
// local account to another, archived for both and its commit waited for,
// less the same message with a no-store hint (routed, not archived), so
// that the routing's own allocations do not count: 87 before the hook's
// commit state became one object, the stanza-id one allocation and the
// journal's batch reused, 84 after that; 79 once the parties' JID
// strings were no longer made again (peerOf); 76 with the stanza-id in
// the commit's object and the id allocator's lists kept; 74 with the
// account names cut from the attributes (localAddr); 75 with one
// serialization for the journal and the delivery (the session no longer
// serializes it, a commit no longer needs a channel; bbolt's page
// splits vary by one or two with the values' sizes). bbolt's commit, one
// per message here, is most of the rest.
func TestArchiveAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's own allocations")
	}
	r := newRig(t)
	r.session("bob")
	s := r.session("alice")
	cost := func(raw string) float64 {
		el, err := stream.ParseElement([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		send := func() {
			r.srv.FromClient(s, el.Copy())
			if !r.srv.WaitCommits(s, 10*time.Second) {
				t.Fatal("archive commit never finished")
			}
		}
		send()
		return testing.AllocsPerRun(100, send)
	}
	const to = "<message xmlns='jabber:client' type='chat' to='bob@" + domain + "'>"
	archived := cost(to + "<body>hello there</body></message>")
	routed := cost(to + "<body>hello there</body><no-store xmlns='urn:xmpp:hints'/></message>")
	t.Logf("%.0f allocations per archived message, %.0f per message routed only", archived, routed)
	if d := archived - routed; d > 75 {
		t.Errorf("archiving a message allocates %.0f times", d)
	}
}
