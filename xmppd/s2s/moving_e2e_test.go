//go:build e2e

package s2s_test

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/moving"
)

// A member moves from hearth2.test (juliet) to hearth.test (julia) with
// the box's guided move (xmppd/moving): the box logs in to the old account
// over c2s, publishes the statement there and asks the old contacts to
// follow. Romeo (on the new box, whose server fetches the statement over
// federation) and carol (on the old box, whose request arrives over
// federation) are switched over by their servers (mod/moved); both end
// up mutual with julia, without anybody approving anything, and keep the
// old name and group julia had for romeo.
func TestGuidedMoveBetweenHearths(t *testing.T) {
	w := newWorld(t)
	h1 := w.start(t, "hearth.test", nil, nil)
	h2 := w.start(t, "hearth2.test", nil, nil)
	for _, a := range []struct {
		b    *box
		user string
	}{{h1, "romeo"}, {h1, "julia"}, {h2, "carol"}, {h2, "juliet"}} {
		if err := a.b.d.Store.CreateAccount(a.user, a.user+"-pw", false); err != nil {
			t.Fatal(err)
		}
	}
	both := func(b *box, user, contact, name string, groups ...string) {
		t.Helper()
		if _, err := roster.Update(b.d.Server, user, contact, func(it *roster.Item) error {
			it.Listed, it.Sub, it.Name, it.Groups = true, roster.Both, name, groups
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	both(h2, "juliet", "romeo@hearth.test", "Romeo", "Club")
	both(h1, "romeo", "juliet@hearth2.test", "Juliet")
	both(h2, "juliet", "carol@hearth2.test", "")
	both(h2, "carol", "juliet@hearth2.test", "")

	oldC2S := h2.d.C2SAddr.String()
	opts := moving.Options{Server: h1.d.Server, User: "julia", Old: "juliet@hearth2.test", Password: "wrong",
		Addrs: func(context.Context, string) ([]string, error) { return []string{oldC2S}, nil },
		TLS:   &tls.Config{RootCAs: w.ca.Pool()}}
	if _, err := moving.Move(context.Background(), opts); !errors.Is(err, moving.ErrLogin) {
		t.Fatalf("wrong password: %v", err)
	}
	if it, ok, _ := roster.Get(h1.d.Store, "julia", "romeo@hearth.test"); ok && it.Listed {
		t.Fatal("a refused login changed the new roster")
	}
	// A server whose certificate is not for the old domain is not given
	// the password.
	opts.Password = "juliet-pw"
	opts.TLS = &tls.Config{}
	if _, err := moving.Move(context.Background(), opts); !errors.Is(err, moving.ErrUnreachable) {
		t.Fatalf("unverified certificate: %v", err)
	}
	opts.TLS = &tls.Config{RootCAs: w.ca.Pool()}
	res, err := moving.Move(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("move: %+v", res)
	if res.Contacts != 2 || res.Notified != 2 || !res.Statement || len(res.Problems) > 0 {
		t.Fatalf("move result %+v", res)
	}

	want := func(b *box, user, contact string, sub roster.Sub) roster.Item {
		t.Helper()
		var it roster.Item
		end := time.Now().Add(20 * time.Second)
		for time.Now().Before(end) {
			var ok bool
			var err error
			it, ok, err = roster.Get(b.d.Store, user, contact)
			if err != nil {
				t.Fatal(err)
			}
			if ok && it.Sub == sub && !it.Ask && !it.PendingIn {
				return it
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s@%s's item for %s: %+v, want %v", user, b.domain, contact, it, sub)
		return it
	}
	if it := want(h1, "julia", "romeo@hearth.test", roster.Both); it.Name != "Romeo" || !slices.Equal(it.Groups, []string{"Club"}) {
		t.Errorf("julia's item for romeo lost name or group: %+v", it)
	}
	want(h1, "julia", "carol@hearth2.test", roster.Both)
	if it := want(h1, "romeo", "julia@hearth.test", roster.Both); it.Name != "Juliet" {
		t.Errorf("romeo's item for julia: %+v", it)
	}
	want(h2, "carol", "julia@hearth.test", roster.Both)
	// The old address lost its subscription from each contact.
	want(h1, "romeo", "juliet@hearth2.test", roster.To)
	want(h2, "carol", "juliet@hearth2.test", roster.To)
}
