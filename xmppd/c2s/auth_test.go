package c2s_test

import (
	"encoding/base64"
	"testing"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const nsSASL = "urn:ietf:params:xml:ns:xmpp-sasl"

// authFirst sends <auth/> with a literal client-first-message and returns
// the server's answer.
func authFirst(c *xmpptest.Client, mech, first string) *stream.Element {
	c.T.Helper()
	c.Send("<auth xmlns='" + nsSASL + "' mechanism='" + mech + "'>" + base64.StdEncoding.EncodeToString([]byte(first)) + "</auth>")
	return c.El()
}

// Debian's slixmpp asks for tls-unique, which TLS 1.3 does not have, on
// each -PLUS mechanism in turn before plain SCRAM. Those refusals name RFC
// 5802's error, are no password guesses (the per-address back-off stays
// at zero), and do not use up the connection's attempts: five in a row
// closed the connection before (MaxAuthAttempts is 5).
func TestUnsupportedChannelBindingIsNotAGuess(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	for i, mech := range []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"} {
		el := authFirst(c, mech, "p=tls-unique,,n=alice,r=abcdefgh")
		if el.Local != "failure" || el.Child("", "invalid-mechanism") == nil || el.ChildText("", "text") != "e=unsupported-channel-binding-type" {
			t.Fatalf("attempt %d (%s) with tls-unique: %s; want <invalid-mechanism/> and e=unsupported-channel-binding-type", i+1, mech, el)
		}
	}
	if n := d.C2S.FailureCount("127.0.0.1"); n != 0 {
		t.Fatalf("channel-binding refusals counted %d times toward the back-off", n)
	}
	// Then plain SCRAM on the same connection. (slixmpp sends the "y"
	// flag there, which after our refusal is no downgrade: the slixmpp e2e
	// test covers it.)
	if el := c.Auth("SCRAM-SHA-256", "alice", "alice-pw"); el.Local != "success" {
		t.Fatalf("login after the refusals: %s", el)
	}
	if n := d.C2S.FailureCount("127.0.0.1"); n != 0 {
		t.Fatalf("back-off counter %d after a good login", n)
	}
}

// A "y" flag on a connection where we offered -PLUS and refused nothing is
// a downgrade: refused with RFC 5802's name for it, and also no password
// guess.
func TestDowngradeRefusedWithRFC5802Error(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	el := authFirst(c, "SCRAM-SHA-256", "y,,n=alice,r=abcdefgh")
	if el.Local != "failure" || el.Child("", "not-authorized") == nil || el.ChildText("", "text") != "e=server-does-support-channel-binding" {
		t.Fatalf("downgrade: %s", el)
	}
	if n := d.C2S.FailureCount("127.0.0.1"); n != 0 {
		t.Fatalf("a downgrade counted %d times toward the password back-off", n)
	}
	// A wrong password does count (the test can fail).
	if el := c.Auth("SCRAM-SHA-256", "alice", "wrong"); el.Child("", "not-authorized") == nil {
		t.Fatalf("wrong password: %s", el)
	}
	if n := d.C2S.FailureCount("127.0.0.1"); n != 1 {
		t.Fatalf("a wrong password counted %d times, want 1", n)
	}
}

// saltFor returns the salt the server offers name in SCRAM-SHA-256.
func saltFor(t *testing.T, d *xmppd.Daemon, name string) string {
	t.Helper()
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	el := authFirst(c, "SCRAM-SHA-256", "n,,n="+name+",r=abcdefgh")
	if el.Local != "challenge" {
		t.Fatalf("first step for %s: %s", name, el)
	}
	b, _ := base64.StdEncoding.DecodeString(el.Text())
	for _, f := range splitComma(string(b)) {
		if len(f) > 2 && f[:2] == "s=" {
			return f[2:]
		}
	}
	t.Fatalf("no salt in %q", b)
	return ""
}

func splitComma(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != ',' {
			i++
		}
		out = append(out, s[:i])
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return out
}

// An unknown name's salt is as stable as a real account's (a fresh one
// per attempt told a prober which names exist); another box answers
// another salt. (store's TestSecretIsStableAndPerBox: across restarts.)
func TestUnknownNameSaltStableAcrossAttempts(t *testing.T) {
	d := xmpptest.Start(t, nil)
	a, b := saltFor(t, d, "nobody"), saltFor(t, d, "nobody")
	if a != b {
		t.Fatalf("two attempts for an unknown name: salts %s and %s", a, b)
	}
	if real1, real2 := saltFor(t, d, "alice"), saltFor(t, d, "alice"); real1 != real2 || real1 == a {
		t.Fatalf("real account salts %s, %s; unknown %s", real1, real2, a)
	}
	other := xmpptest.Start(t, nil)
	if c := saltFor(t, other, "nobody"); c == a {
		t.Fatalf("two boxes give an unknown name the same salt %s", a)
	}
}

// The refusals are free only as many times as a client trying each -PLUS
// mechanism needs: a connection repeating them still runs out of attempts
// instead of looping until the auth timeout.
func TestChannelBindingRefusalsAreBounded(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	for i := 1; i <= 9; i++ { // 4 free, then MaxAuthAttempts (5)
		el := authFirst(c, "SCRAM-SHA-256-PLUS", "p=tls-unique,,n=alice,r=abcdefgh")
		if el.Local != "failure" {
			t.Fatalf("refusal %d: %s", i, el)
		}
	}
	c.StreamError("policy-violation")
}
