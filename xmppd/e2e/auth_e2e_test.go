//go:build e2e

package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSlixmppChannelBindingFallback: Debian's slixmpp asks for tls-unique
// (absent from TLS 1.3) on each -PLUS mechanism before falling back to
// plain SCRAM. The scenario checks each refusal names RFC 5802's
// unsupported-channel-binding-type and that slixmpp then logs in; here we
// check those refusals left the address's SASL back-off alone: three
// wrong passwords from the same address right after are answered at once.
func TestSlixmppChannelBindingFallback(t *testing.T) {
	t.Parallel()
	if backend != "xmppd" {
		t.Skip("checks xmppd's exact SASL failure")
	}
	s := startServer(t, serverOpts{})
	user := account(t, s, "cbuser")
	runScenario(t, s, "cb_fallback", []string{user})
	if t.Failed() {
		return
	}
	// slixmpp connected from 127.0.0.1; so do we.
	for i := 1; i <= 3; i++ {
		c, err := dialTLS(s.C2STLS, s.Domain, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.open(); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		err = c.auth("cbuser", "wrong", "SCRAM-SHA-256")
		took := time.Since(began)
		c.Close()
		var se *saslError
		if !errors.As(err, &se) || se.Condition != "not-authorized" {
			t.Fatalf("wrong password %d: %v", i, err)
		}
		if took >= time.Second {
			t.Fatalf("wrong password %d from 127.0.0.1 after slixmpp's channel-binding fallbacks waited %v: the refusals fed the back-off", i, took)
		}
	}
	// And with a wrong password (on a server of its own, whose back-off
	// has not seen the guesses above), slixmpp sees the refusals, then
	// not-authorized for each plain SCRAM attempt, without a stream error.
	s2 := startServer(t, serverOpts{})
	account(t, s2, "cbuser")
	runScenario(t, s2, "cb_fallback_wrong", []string{"cbuser:wrong-password"})
}

// TestUnfinishedStanzaAfterAuth: a member's stanza has -stanza-timeout
// from its first byte to its last; one left unfinished was held forever
// (+2.8 MiB RSS per connection for a 208 KB partial stanza). Idle time
// between stanzas does not count.
func TestUnfinishedStanzaAfterAuth(t *testing.T) {
	t.Parallel()
	if backend != "xmppd" {
		t.Skip("xmppd's -stanza-timeout")
	}
	if !hasFlag("stanza-timeout") {
		t.Fatal("xmppd has no -stanza-timeout flag; the 30s default cannot be tested quickly")
	}
	const bound = 2 * time.Second
	s := startServer(t, serverOpts{Args: []string{"-stanza-timeout", bound.String()}})
	pw := randomPassword(t)
	s.AddUser(t, "dawdler", pw)
	c, err := login(s.C2STLS, s.Domain, nextSource(), "dawdler", pw, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Idle longer than the bound between stanzas: still served.
	time.Sleep(bound + time.Second)
	if err := c.ping("idle", 5*time.Second); err != nil {
		t.Fatalf("after idling %v between stanzas: %v", bound+time.Second, err)
	}
	// 208 KB of a stanza, never finished.
	began := time.Now()
	if err := c.send("<message to='" + c.JID + "'><body>" + strings.Repeat("x", 208<<10)); err != nil {
		t.Fatal(err)
	}
	if err := expectStreamError(c, "policy-violation", bound+10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < bound-500*time.Millisecond {
		t.Fatalf("closed %v after the stanza began, before the %v bound", took, bound)
	}
}

// TestOnionCrowd: every onion connection comes from tor's address; 20
// silent ones used to lock out every onion user. With 30 silent strangers
// on the onion listener, a member still logs in over it.
func TestOnionCrowd(t *testing.T) {
	t.Parallel()
	if backend != "xmppd" {
		t.Skip("xmppd's onion listener")
	}
	onion := freePort(t)
	s := startServer(t, serverOpts{Args: []string{"-c2s-onion", onion}})
	pw := randomPassword(t)
	s.AddUser(t, "torist", pw)
	// Strangers who open a stream, then say nothing more (each is served
	// its features, so each is counted before the member comes).
	for i := 1; i <= 30; i++ {
		c, err := dialPlain(onion, s.Domain, "", false)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.open(); err != nil {
			t.Fatalf("onion stranger %d refused (one shared cap for all of Tor?): %v", i, err)
		}
	}
	c, err := dialStartTLS(onion, s.Domain, "")
	if err != nil {
		t.Fatalf("a member behind 30 silent onion strangers: %v", err)
	}
	defer c.Close()
	if err := c.open(); err != nil {
		t.Fatal(err)
	}
	if err := c.auth("torist", pw, "SCRAM-SHA-256"); err != nil {
		t.Fatal(err)
	}
	if err := c.bind("tor"); err != nil {
		t.Fatal(err)
	}
	if err := c.ping("tor", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
