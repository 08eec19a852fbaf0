package xmppd

import (
	"bytes"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
)

// TestFederationPolicyApplied: a block list the admin pages save applies
// to the running server (Admin.Federation → applyFederation): a message to
// a domain blocked after the start bounces not-allowed at once. The
// policy was read only at start, so the blocked domain stayed reachable
// until a restart.
func TestFederationPolicyApplied(t *testing.T) {
	dir := state.Dir(t.TempDir())
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.Domain = "hearth.localhost"
	if err := config.Save(dir.Config(), c); err != nil {
		t.Fatal(err)
	}
	// Out only: no listener; a resolver nobody answers on (loopback)
	// so nothing leaves the machine.
	d, err := Start(Options{State: dir, Domain: "hearth.localhost", C2S: "127.0.0.1:0",
		S2S: S2SOptions{Out: true, Resolver: "127.0.0.1:9"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(t.Context()) })
	if d.S2S() == nil {
		t.Fatal("federation did not start")
	}
	if err := d.Store.CreateAccount("anna", "anna-password", true); err != nil {
		t.Fatal(err)
	}
	anna := dial(t, d, "anna", "anna-password")
	send := func(id string) []byte {
		t.Helper()
		anna.Send([]byte(`<message id="` + id + `" to="x@spam.example" type="chat"><body>hi</body></message>`))
		anna.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			b, err := anna.ReadStanza()
			if err != nil {
				t.Fatalf("no answer to %s: %v", id, err)
			}
			if bytes.Contains(b, []byte(`id="`+id+`"`)) || bytes.Contains(b, []byte(`id='`+id+`'`)) {
				return b
			}
		}
	}
	c.Federation.Block = []string{"spam.example"}
	if err := config.Save(dir.Config(), c); err != nil {
		t.Fatal(err)
	}
	now, err := d.adminDeps().Federation()
	if err != nil || !now {
		t.Fatalf("apply: now %v, err %v", now, err)
	}
	if b := send("m1"); !bytes.Contains(b, []byte("not-allowed")) || !bytes.Contains(b, []byte("does not talk to spam.example")) {
		t.Fatalf("a message to a blocked domain: %s", b)
	}
	// Unblocked: the message is no longer refused; it waits in the
	// domain's queue for its server.
	c.Federation.Block = nil
	if err := config.Save(dir.Config(), c); err != nil {
		t.Fatal(err)
	}
	if _, err := d.adminDeps().Federation(); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.S2S().Queued(); n != 0 {
		t.Fatalf("%d stanzas queued before the second message", n)
	}
	anna.Send([]byte(`<message id="m2" to="x@spam.example" type="chat"><body>hi</body></message>`))
	waitFor(t, "the message to the unblocked domain queued for sending", func() bool { n, _ := d.S2S().Queued(); return n == 1 })
}
