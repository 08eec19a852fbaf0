//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/internal/browsertest"
	"github.com/hearthchat/hearth/xmppd/store"
)

// TestAdminPagesInBrowser: the admin pages in chromium at 360x740 against
// a real, claimed xmppd with netconf beside it. The admin removes a member
// (whose slixmpp login is then refused) and undoes it (the login works
// again), sends an announcement that a member logged in with slixmpp
// receives from the chat itself, makes a circle and an invitation, and
// reads the health page: storage and netconf's reachability report.
func TestAdminPagesInBrowser(t *testing.T) {
	nd := browsertest.NodeDir(t)
	bins := buildBins(t, "xmppd", "netconf")
	dir := state.Dir(t.TempDir())
	claimedState(t, dir, []member{anna, {"bert", "bert likes boats", false}, {"carol", "carol rows fast", false}}, func(st *store.Store) error {
		// carol's phone, as SASL2 records it: her page lists it.
		return st.SeenDevice("carol", "ua-carol-phone", "Conversations", "Pixel 7", time.Now().Add(-2*time.Hour-time.Minute))
	})
	// netconf beside xmppd, as on the box: the health page shows its
	// report, read over its socket.
	startNetconf(t, bins, dir)
	x := startClaimed(t, bins, dir)
	// The health page must show netconf's whole report: wait until the
	// report is written with its self-test and no check still pending. (A
	// run read the page before netconf's self-test had reported; the test
	// then compared the page with the later, fuller report.)
	settled := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(string(dir), "status", "netconf.json"))
		type check struct{ ID, Level, Message string }
		var r struct{ Checks []check }
		if err == nil && json.Unmarshal(b, &r) == nil &&
			slices.ContainsFunc(r.Checks, func(c check) bool { return c.ID == "selftest" }) &&
			!slices.ContainsFunc(r.Checks, func(c check) bool { return c.Level == "pending" }) {
			break
		}
		if time.Now().After(settled) {
			t.Fatalf("netconf's report did not settle in 60 s: %s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// bert is online with slixmpp when the announcement goes out.
	expect, watch := watchPeer(t, ctx, x, "bert's client", "bert", "bert likes boats")
	defer func() { cancel(); watch.Wait() }()
	expect("login", func(l string) bool { return l == "ready" })

	shots := browsertest.Screenshots(t)
	const text = "The boat house is closed on Sunday. Training moves to the lake."
	res := browsertest.RunPaused(t, ctx, nd, "setup-ui/e2e/admin.mjs", func(line string) {
		if line == "removed" {
			// Removed: carol's app cannot log in (nor keep a session).
			if got := login(t, x, "carol", "carol rows fast"); got != "refused" {
				t.Errorf("carol's login while removed: %q, want refused", got)
			}
		}
	}, "BASE=http://"+x.web, "ADMIN=anna", "ADMIN_PASSWORD=green kettle river",
		"OUT="+shots, "REMOVE=carol", "CIRCLE_MEMBER=bert", "TEXT="+text)
	for _, k := range []string{"members", "removed", "undone", "resetLink", "devices", "signedOut", "ownDevices", "announced", "circle", "invite", "storage", "noFeed", "saved", "forecast", "kept", "move"} {
		if res.Checks[k] != true {
			t.Errorf("browser check %s: %v", k, res.Checks[k])
		}
	}
	if n, _ := res.Checks["reachItems"].(float64); n < 1 {
		t.Errorf("health page shows no reachability checks")
	}
	t.Logf("health page, netconf's report: %v", res.Checks["reachText"])
	// netconf's words, as its own status report says them.
	if rep, err := os.ReadFile(filepath.Join(x.state, "status", "netconf.json")); err == nil {
		var r struct{ Checks []struct{ Message string } }
		json.Unmarshal(rep, &r)
		reach, _ := res.Checks["reachText"].(string)
		for _, c := range r.Checks {
			if c.Message != "" && !strings.Contains(reach, c.Message) {
				t.Errorf("health page lacks netconf's %q", c.Message)
				break
			}
		}
	}
	// Undone: carol logs in again.
	if got := login(t, x, "carol", "carol rows fast"); got != "ok" {
		t.Errorf("carol's login after undo: %q", got)
	}
	// The announcement reached bert's app, from the chat itself.
	expect("the announcement", func(l string) bool { return l == "message hearth.localhost "+text })
	if c, err := config.Load(dir.Config()); err != nil || c.Update.Auto || c.Update.Window != "02:00-05:00" {
		t.Errorf("update settings saved as %+v (%v)", c.Update, err)
	} else if c.Archive.RetentionDays != 90 || c.Archive.FileRetentionDays != 14 {
		t.Errorf("retention saved as %+v", c.Archive)
	}
}
