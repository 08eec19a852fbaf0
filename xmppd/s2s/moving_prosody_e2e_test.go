//go:build e2e

package s2s_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/moving"
)

// A member moves from Debian's prosody to Hearth with the box's guided
// move: alice@prosody.test and bob@hearth.test are mutual contacts
// (federate.py); the box logs in to prosody as alice, publishes the
// statement in prosody's PEP and asks bob to follow julia@hearth.test;
// bob's server fetches the statement from prosody over federation and
// switches him over. Prosody itself is the old server here, the real
// peer whose roster, PEP and SCRAM the move must speak.
func TestGuidedMoveFromProsody(t *testing.T) {
	w := newWorld(t)
	pc2s := startProsody(t, w, w.ca, true)
	h := w.start(t, "hearth.test", nil, nil)
	if err := h.d.Store.CreateAccount("julia", "julia-pw", false); err != nil {
		t.Fatal(err)
	}
	federate(t, w, h, pc2s)
	res, err := moving.Move(context.Background(), moving.Options{Server: h.d.Server, User: "julia",
		Old: "alice@prosody.test", Password: "alice-pw",
		Addrs: func(context.Context, string) ([]string, error) {
			return []string{fmt.Sprintf("127.0.0.1:%d", pc2s)}, nil
		},
		TLS: &tls.Config{RootCAs: w.ca.Pool()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("move: %+v", res)
	if res.Contacts != 1 || res.Notified != 1 || !res.Statement {
		t.Fatalf("move from prosody: %+v", res)
	}
	end := time.Now().Add(20 * time.Second)
	for {
		a, _, _ := roster.Get(h.d.Store, "bob", "julia@hearth.test")
		b, _, _ := roster.Get(h.d.Store, "julia", "bob@hearth.test")
		old, _, _ := roster.Get(h.d.Store, "bob", "alice@prosody.test")
		if a.Sub == roster.Both && b.Sub == roster.Both && old.Sub == roster.To {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("bob's item for julia %+v, julia's for bob %+v, bob's for alice %+v", a, b, old)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
