//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/internal/browsertest"
	"github.com/hearthchat/hearth/xmppd/client"
)

// TestFederationPageInBrowser: the admin's "Other servers" page in
// chromium at 360x740 against a real, claimed xmppd with federation on
// (inbound on loopback, a DNS server nobody answers on: nothing leaves the
// machine) and netconf beside it. The page says whether other servers
// reach the box (here: no, home network only; TestAdminFederation shows
// netconf's self-test); a chat address in the block list is refused
// with words and kept in the field; a saved block list reaches the config
// and the running server at once (a member's message to the blocked
// domain bounces not-allowed); federation turned off applies at once too
// (a message to any other domain bounces).
func TestFederationPageInBrowser(t *testing.T) {
	nd := browsertest.NodeDir(t)
	bins := buildBins(t, "xmppd", "netconf")
	dir := state.Dir(t.TempDir())
	claimedState(t, dir, []member{anna}, nil)
	s2s := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startNetconf(t, bins, dir)
	x := startClaimed(t, bins, dir, "-s2s", s2s, "-s2s-dns", "127.0.0.1:9", "-s2s-onion", "none", "-tor-socks", "none")
	waitPort(t, s2s)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	shots := browsertest.Screenshots(t)
	res := browsertest.RunPaused(t, ctx, nd, "setup-ui/e2e/federation.mjs", func(line string) {
		if line != "blocked" {
			return
		}
		// Saved: in the config, and the running server refuses the
		// blocked domain without a restart.
		if c, err := config.Load(dir.Config()); err != nil || c.Federation.Off || !slices.Equal(c.Federation.Block, []string{"spam.example", "xn--mnchen-3ya.example"}) {
			t.Errorf("federation saved as %+v (%v)", c.Federation, err)
		}
		if b := bounce(t, x, "x@spam.example"); !bytes.Contains(b, []byte("not-allowed")) {
			t.Errorf("a message to the blocked domain: %s", b)
		}
	}, "BASE=http://"+x.web, "ADMIN=anna", "ADMIN_PASSWORD=green kettle river", "OUT="+shots)
	str := func(k string) string { s, _ := res.Checks[k].(string); return s }
	// A box on the home network only: netconf runs no federation
	// self-test (no internet name to test), and the page says why other
	// servers cannot reach it.
	if !strings.Contains(str("status"), "reachable on the home network only (hearth.localhost)") {
		t.Errorf("the page's status: %q", str("status"))
	}
	for k, want := range map[string]string{
		"navigation": "Other servers",
		"refusal":    "is a chat address, not a server. Write only the part after the @, for example spam.example.",
		"kept":       "dave@spam.example",
		"saved":      "uses these settings now",
		"blockAfter": "spam.example\nmünchen.example",
		"offStatus":  "federation is off",
		"offSaved":   "uses these settings now",
	} {
		if !strings.Contains(str(k), want) {
			t.Errorf("browser check %s: %q, want %q", k, str(k), want)
		}
	}
	for _, k := range []string{"onChecked", "offChecked"} {
		if res.Checks[k] != true {
			t.Errorf("browser check %s: %v", k, res.Checks[k])
		}
	}
	// Off applies at once: a message to any other domain bounces.
	if c, err := config.Load(dir.Config()); err != nil || !c.Federation.Off {
		t.Errorf("federation saved as %+v (%v)", c.Federation, err)
	}
	if b := bounce(t, x, "friend@elsewhere.example"); !bytes.Contains(b, []byte("not-allowed")) {
		t.Errorf("a message to another domain with federation off: %s", b)
	}
}

// bounce logs anna in, sends a message to to and returns the error that
// comes back for it.
func bounce(t *testing.T, x *xmppd, to string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: x.c2s, Domain: "hearth.localhost", User: "anna", Password: "green kettle river",
		TLS: &tls.Config{InsecureSkipVerify: true, ServerName: "hearth.localhost"}, Mechanism: client.ScramSHA256, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("anna's login: %v", err)
	}
	defer c.Close()
	c.Send([]byte(`<message id="fed1" to="` + to + `" type="chat"><body>hello</body></message>`))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		b, err := c.ReadStanza()
		if err != nil {
			t.Fatalf("no answer to the message to %s: %v", to, err)
			return nil
		}
		if bytes.Contains(b, []byte("fed1")) {
			return b
		}
	}
}
