//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The limits below are the numbers (and xmppd/stream's
// PreAuthLimits/PostAuthLimits); they are repeated here on purpose so a
// change to the server's constants shows up as a failing test.
const (
	preAuthMaxBytes  = 8 << 10
	preAuthMaxElems  = 32
	maxDepth         = 16
	postAuthMaxBytes = 256 << 10
)

type phase int

const (
	// phHeader: the payload is sent instead of the stream header on a fresh
	// direct-TLS connection.
	phHeader phase = iota
	// phPreAuth: after the stream header and features, before SASL.
	phPreAuth
	// phPostAuth: after SASL and resource binding.
	phPostAuth
	// phPreTLS: on the STARTTLS port after the header, still unencrypted.
	phPreTLS
)

func (p phase) String() string {
	return [...]string{"instead of the stream header", "before authentication", "after authentication", "before STARTTLS"}[p]
}

// srcSeq gives each raw connection its own loopback source address, so the
// server's per-IP accounting (SASL back-off, connection limits) of one case
// cannot leak into the next.
var srcSeq atomic.Int32

func nextSource() string {
	n := srcSeq.Add(1)
	return fmt.Sprintf("127.0.%d.%d", 10+n/250, 1+n%250)
}

const saslNS = "urn:ietf:params:xml:ns:xmpp-sasl"

// authWith is an <auth/> element (a nonza the server must parse before
// authentication) with the given raw content.
func authWith(content string) string {
	return "<auth xmlns='" + saslNS + "' mechanism='SCRAM-SHA-256'>" + content + "</auth>"
}

// authOfSize is an <auth/> of exactly n bytes, padded with base64.
func authOfSize(n int) string {
	empty := authWith("")
	return authWith(strings.Repeat("A", n-len(empty)))
}

// authWithElems is an <auth/> holding count elements in total (itself included).
func authWithElems(count int) string {
	return authWith(strings.Repeat("<x/>", count-1))
}

// authWithDepth is an <auth/> whose deepest element is at the given depth
// (the auth element is depth 1).
func authWithDepth(depth int) string {
	return authWith(strings.Repeat("<x>", depth-1) + strings.Repeat("</x>", depth-1))
}

func streamHeader(to, defaultNS, streamNS string) string {
	return fmt.Sprintf(`<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' to='%s' version='1.0'>`, defaultNS, streamNS, to)
}

// expectStreamError reads until the server sends a stream error, checks its
// condition, and that the server then closes the connection.
func expectStreamError(c *xconn, want string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		e, err := c.next(time.Until(deadline))
		if err != nil {
			return fmt.Errorf("want stream error <%s/>, got none (%v); the server sent: %s", want, err, c.rec)
		}
		if e.Name == evClose {
			return fmt.Errorf("want stream error <%s/>, but the server closed the stream without one; it sent: %s", want, c.rec)
		}
		cond := streamErrorCondition(e)
		if cond == "" {
			continue // the header, features, a SASL failure …
		}
		if cond != want {
			return fmt.Errorf("want stream error <%s/>, got <%s/>: %v", want, cond, e)
		}
		break
	}
	// After the error the server must close: the reader sees the end.
	closeBy := time.Now().Add(5 * time.Second)
	for {
		e, err := c.next(time.Until(closeBy))
		if errors.Is(err, errTimeout) {
			return fmt.Errorf("stream error <%s/> sent, but the connection was still open 5s later", want)
		}
		if err != nil {
			return nil // connection ended
		}
		if e.Name != evClose {
			return fmt.Errorf("after stream error <%s/>, the server sent more: %v", want, e)
		}
	}
}

// expectSASLFailureOnly: an <auth/> within the limits but with nonsense
// content gets a SASL answer (not a stream error), and the stream stays open
// so the client could try again (RFC 6120 §6.4.5).
func expectSASLFailureOnly(c *xconn, d time.Duration) error {
	e, err := c.expect("SASL <failure/> (the element is within the limits, so only SASL may reject its content)", d,
		func(e *elem) bool { return e.Name.Space == saslNS })
	if err != nil {
		return err
	}
	if e.Name.Local != "failure" && e.Name.Local != "challenge" {
		return fmt.Errorf("unexpected SASL answer %v", e)
	}
	answer := e.Name.Local
	switch e, err := c.next(500 * time.Millisecond); {
	case errors.Is(err, errTimeout):
		return nil
	case err != nil:
		return fmt.Errorf("after the SASL %s the server closed the connection: %v", answer, err)
	default:
		return fmt.Errorf("after the SASL %s the server sent %v", answer, e)
	}
}

type limitCase struct {
	name    string
	phase   phase
	payload string
	want    string // stream error condition; "" means the payload is acceptable
	// starttls: connect to the STARTTLS port and upgrade, instead of direct TLS.
	starttls bool
	// check, for acceptable payloads, verifies what should have happened;
	// it returns false if the server legitimately ended the connection.
	check func(t *testing.T, c *xconn) (open bool)
}

func TestStreamLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	obsPw, userPw := randomPassword(t), randomPassword(t)
	s.AddUser(t, "observer", obsPw)
	s.AddUser(t, "limits", userPw)

	// The well-behaved client: logged in throughout, checked after each case.
	obs, err := login(s.C2STLS, s.Domain, "127.0.0.1", "observer", obsPw, "watch")
	if err != nil {
		t.Fatalf("observer login: %v", err)
	}
	defer obs.Close()
	seq := 0
	observerAlive := func(t *testing.T, after string) {
		t.Helper()
		seq++
		body := fmt.Sprintf("alive %d", seq)
		obs.send(fmt.Sprintf("<message to='%s' type='chat' id='alive%d'><body>%s</body></message>", obs.JID, seq, body))
		if _, err := obs.expect("the observer's message to itself", 5*time.Second, func(e *elem) bool {
			b := e.child(nsClient, "body")
			return e.is(nsClient, "message") && b != nil && b.Text == body
		}); err != nil {
			t.Errorf("the well-behaved observer stopped working after %s: %v", after, err)
		}
	}
	// obsReceives waits for a message to the observer matching ok.
	obsReceives := func(what string, ok func(*elem) bool) (*elem, error) {
		return obs.expect(what, 10*time.Second, func(e *elem) bool { return e.is(nsClient, "message") && ok(e) })
	}
	bodyIs := func(want string) func(*elem) bool {
		return func(e *elem) bool { b := e.child(nsClient, "body"); return b != nil && b.Text == want }
	}

	hdr := func(to, defNS, strNS string) string { return streamHeader(to, defNS, strNS) }
	good := func() string { return hdr(s.Domain, nsClient, nsStreams) }
	// Delivered cases go to the observer's full JID: they test the stream
	// layer, not bare-JID routing (the slixmpp tests cover that).
	obsJID := obs.JID
	msgTo := func(to, inner string) string {
		return fmt.Sprintf("<message to='%s' type='chat' id='m1'>%s</message>", to, inner)
	}
	// messageOfSize is a message to the observer of exactly n bytes.
	messageOfSize := func(n int) string {
		pre, post := fmt.Sprintf("<message to='%s' type='chat' id='big'><body>", obsJID), "</body></message>"
		return pre + strings.Repeat("x", n-len(pre)-len(post)) + post
	}

	cases := []limitCase{
		// RFC 6120 §11.1 restricted XML.
		{name: "doctype", phase: phHeader, want: "restricted-xml",
			payload: "<?xml version='1.0'?><!DOCTYPE stream:stream>" + good()[len("<?xml version='1.0'?>"):]},
		{name: "entity declaration", phase: phHeader, want: "restricted-xml",
			payload: "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY hearth 'x'>]>" + good()[len("<?xml version='1.0'?>"):]},
		{name: "comment", phase: phPreAuth, want: "restricted-xml", payload: "<!-- a comment -->"},
		{name: "comment inside a stanza", phase: phPostAuth, want: "restricted-xml",
			payload: msgTo(obsJID, "<body>a<!-- c -->b</body>")},
		{name: "processing instruction", phase: phPreAuth, want: "restricted-xml", payload: "<?hearth test?>"},
		{name: "processing instruction inside a stanza", phase: phPostAuth, want: "restricted-xml",
			payload: msgTo(obsJID, "<body>a<?pi x?>b</body>")},
		{name: "unknown entity reference", phase: phPreAuth, want: "restricted-xml", payload: authWith("&hearth;")},
		{name: "unknown entity reference inside a stanza", phase: phPostAuth, want: "restricted-xml",
			payload: msgTo(obsJID, "<body>&nbsp;</body>")},
		{name: "predefined and character entities pass", phase: phPostAuth,
			payload: msgTo(obsJID, "<body>&amp;&lt;&gt;&quot;&apos;&#65;&#x42;</body>"),
			check: func(t *testing.T, c *xconn) bool {
				if _, err := obsReceives(`body &<>"'AB`, bodyIs(`&<>"'AB`)); err != nil {
					t.Error(err)
				}
				return true
			}},
		// Well-formedness.
		{name: "mismatched end tag", phase: phPreAuth, want: "not-well-formed", payload: authWith("<a></b>")},
		{name: "mismatched end tag inside a stanza", phase: phPostAuth, want: "not-well-formed",
			payload: msgTo(obsJID, "<body>x</bdy>")},
		{name: "illegal character U+0001", phase: phPreAuth, want: "not-well-formed", payload: authWith("\x01")},
		{name: "unescaped < in attribute", phase: phPreAuth, want: "not-well-formed",
			payload: "<auth xmlns='" + saslNS + "' mechanism='a<b'/>"},
		{name: "duplicate attribute", phase: phPreAuth, want: "not-well-formed",
			payload: "<auth xmlns='" + saslNS + "' mechanism='SCRAM-SHA-256' mechanism='SCRAM-SHA-1'/>"},
		{name: "duplicate attribute inside a stanza", phase: phPostAuth, want: "not-well-formed",
			payload: "<message to='" + obsJID + "' type='chat' type='normal'><body>x</body></message>"},
		// Namespaces.
		{name: "unbound prefix", phase: phPreAuth, want: "bad-namespace-prefix", payload: "<foo:auth/>"},
		{name: "unbound prefix inside a stanza", phase: phPostAuth, want: "bad-namespace-prefix",
			payload: msgTo(obsJID, "<body>x</body><foo:bar/>")},
		{name: "stream element in a wrong namespace", phase: phHeader, want: "invalid-namespace",
			payload: hdr(s.Domain, nsClient, "urn:example:not-streams")},
		{name: "wrong default namespace", phase: phHeader, want: "invalid-namespace",
			payload: hdr(s.Domain, "urn:example:not-client", nsStreams)},
		{name: "to an unknown domain", phase: phHeader, want: "host-unknown",
			payload: hdr("unknown.example", nsClient, nsStreams)},
		// Encoding.
		{name: "invalid UTF-8", phase: phPreAuth, want: "unsupported-encoding", payload: authWith("\xff\xfe\xc3")},
		{name: "invalid UTF-8 inside a stanza", phase: phPostAuth, want: "unsupported-encoding",
			payload: msgTo(obsJID, "<body>\xc3\x28</body>")},
		{name: "non-UTF-8 encoding declared", phase: phHeader, want: "unsupported-encoding",
			payload: "<?xml version='1.0' encoding='ISO-8859-1'?>" + good()[len("<?xml version='1.0'?>"):]},
		// Size, count and depth before authentication.
		{name: "8 KiB element before auth passes", phase: phPreAuth, payload: authOfSize(preAuthMaxBytes),
			check: checkSASLOnly},
		{name: "8 KiB + 1 byte before auth", phase: phPreAuth, want: "policy-violation", payload: authOfSize(preAuthMaxBytes + 1)},
		{name: "32 elements before auth pass", phase: phPreAuth, payload: authWithElems(preAuthMaxElems), check: checkSASLOnly},
		{name: "33 elements before auth", phase: phPreAuth, want: "policy-violation", payload: authWithElems(preAuthMaxElems + 1)},
		{name: "depth 16 before auth passes", phase: phPreAuth, payload: authWithDepth(maxDepth), check: checkSASLOnly},
		{name: "depth 17 before auth", phase: phPreAuth, want: "policy-violation", payload: authWithDepth(maxDepth + 1)},
		{name: "depth 17 after auth", phase: phPostAuth, want: "policy-violation",
			payload: msgTo(obsJID, strings.Repeat("<x xmlns='urn:example:x'>", maxDepth)+strings.Repeat("</x>", maxDepth))},
		// Size after authentication.
		{name: "256 KiB stanza after auth passes", phase: phPostAuth, payload: messageOfSize(postAuthMaxBytes),
			check: func(t *testing.T, c *xconn) bool {
				n := postAuthMaxBytes
				if _, err := obsReceives("the 256 KiB message", func(e *elem) bool {
					b := e.child(nsClient, "body")
					return b != nil && len(b.Text) > n/2 && strings.Trim(b.Text, "x") == ""
				}); err != nil {
					t.Error(err)
				}
				return true
			}},
		{name: "256 KiB + 1 byte stanza after auth", phase: phPostAuth, want: "policy-violation",
			payload: messageOfSize(postAuthMaxBytes + 1)},
		// The same parser guards the unencrypted start of the STARTTLS port.
		{name: "comment before STARTTLS", phase: phPreTLS, want: "restricted-xml", payload: "<!-- a comment -->"},
		{name: "8 KiB + 1 byte before STARTTLS", phase: phPreTLS, want: "policy-violation", payload: authOfSize(preAuthMaxBytes + 1)},
		{name: "unbound prefix before STARTTLS", phase: phPreTLS, want: "bad-namespace-prefix", payload: "<foo:starttls/>"},
		// Authorization.
		{name: "message before auth", phase: phPreAuth, want: "not-authorized",
			payload: msgTo(obsJID, "<body>sneaky</body>")},
		{name: "message before auth over STARTTLS", phase: phPreAuth, starttls: true, want: "not-authorized",
			payload: msgTo(obsJID, "<body>sneaky</body>")},
		{name: "comment after STARTTLS", phase: phPreAuth, starttls: true, want: "restricted-xml", payload: "<!-- a comment -->"},
		{name: "iq before auth", phase: phPreAuth, want: "not-authorized",
			payload: "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>"},
		{name: "spoofed from", phase: phPostAuth,
			payload: fmt.Sprintf("<message to='%s' from='mallory@%s/evil' type='chat' id='spoof'><body>spoof</body></message>", obsJID, s.Domain),
			check: func(t *testing.T, c *xconn) bool {
				// Either the server stamps the true full JID, or it ends the
				// stream with invalid-from. Never may the observer see mallory.
				select {
				case e, ok := <-c.events:
					if !ok {
						t.Fatalf("spoofed from: connection closed without a stream error")
					}
					if cond := streamErrorCondition(e); cond != "" {
						if cond != "invalid-from" {
							t.Errorf("spoofed from: stream error <%s/>, want stamping or <invalid-from/>", cond)
						}
						t.Logf("spoofed from: the server answered with <invalid-from/>")
						return false
					}
					t.Fatalf("spoofed from: unexpected answer %v", e)
				case <-time.After(300 * time.Millisecond):
				}
				e, err := obsReceives("the message with a spoofed from", bodyIs("spoof"))
				if err != nil {
					t.Error(err)
					return true
				}
				if got := e.attr("from"); got != c.JID {
					t.Errorf("spoofed from: the observer saw from=%q, want the sender's true full JID %q", got, c.JID)
				}
				t.Logf("spoofed from: the server stamped from=%q", e.attr("from"))
				return true
			}},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c *xconn
			var err error
			switch {
			case tc.phase == phPreTLS:
				c, err = dialPlain(s.C2S, s.Domain, nextSource(), false)
			case tc.starttls:
				c, err = dialStartTLS(s.C2S, s.Domain, nextSource())
			default:
				c, err = dialTLS(s.C2STLS, s.Domain, nextSource())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			switch tc.phase {
			case phPreAuth, phPreTLS:
				if err := c.open(); err != nil {
					t.Fatal(err)
				}
			case phPostAuth:
				if err := c.open(); err != nil {
					t.Fatal(err)
				}
				if err := c.auth("limits", userPw, "SCRAM-SHA-256"); err != nil {
					t.Fatal(err)
				}
				if err := c.bind(""); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.send(tc.payload); err != nil {
				t.Fatalf("sending %s: %v", tc.phase, err)
			}
			if tc.want != "" {
				if err := expectStreamError(c, tc.want, 10*time.Second); err != nil {
					t.Errorf("%s %s (%s): %v", tc.name, tc.phase, abbreviate(tc.payload), err)
				}
			} else {
				// Still open and usable.
				if tc.check(t, c) && tc.phase == phPostAuth {
					body := "still here"
					c.send(fmt.Sprintf("<message to='%s' type='chat'><body>%s</body></message>", c.JID, body))
					if _, err := c.expect("own message after an acceptable stanza", 5*time.Second, func(e *elem) bool {
						b := e.child(nsClient, "body")
						return e.is(nsClient, "message") && b != nil && b.Text == body
					}); err != nil {
						t.Errorf("connection unusable after %s: %v", tc.name, err)
					}
				}
			}
			observerAlive(t, tc.name)
		})
	}
}

// checkSASLOnly: an element within the pre-auth limits gets at most a SASL
// failure (its content is not a valid SCRAM message), no stream error, and
// the connection can still log in.
func checkSASLOnly(t *testing.T, c *xconn) bool {
	t.Helper()
	if err := expectSASLFailureOnly(c, 10*time.Second); err != nil {
		t.Error(err)
	}
	return true
}

func abbreviate(s string) string {
	s = strings.ToValidUTF8(s, "�")
	if len(s) > 160 {
		return fmt.Sprintf("%s…%s (%d bytes)", s[:100], s[len(s)-40:], len(s))
	}
	return s
}

// TestAuthTimeout: a connection that does not authenticate and bind within
// the bound is closed with connection-timeout; one that did stays.
func TestAuthTimeout(t *testing.T) {
	t.Parallel()
	if backend == "xmppd" && !hasFlag("auth-timeout") {
		t.Fatalf("xmppd has no -auth-timeout flag; the 60s default cannot be tested quickly")
	}
	if backend == "xmppd" && !regexp.MustCompile(`-auth-timeout duration\s*\n[^\n]*\(default 1m0s\)`).MatchString(xmppdHelp) {
		t.Errorf("xmppd -h does not show a 60s default for -auth-timeout:\n%s", xmppdHelp)
	}
	const bound = 3 * time.Second
	var args []string
	if backend == "xmppd" {
		args = []string{"-auth-timeout", bound.String()}
	} else {
		t.Skip("prosody has no comparable setting")
	}
	s := startServer(t, serverOpts{Args: args})
	pw := randomPassword(t)
	s.AddUser(t, "patient", pw)

	good, err := login(s.C2STLS, s.Domain, nextSource(), "patient", pw, "")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()

	type idle struct {
		name  string
		setup func(c *xconn) error
	}
	for _, tc := range []idle{
		{"silent after TLS", func(c *xconn) error { return nil }},
		{"stream opened, no SASL", func(c *xconn) error { return c.open() }},
		{"authenticated, never bound", func(c *xconn) error {
			if err := c.open(); err != nil {
				return err
			}
			return c.auth("patient", pw, "SCRAM-SHA-256")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			c, err := dialTLS(s.C2STLS, s.Domain, nextSource())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := tc.setup(c); err != nil {
				t.Fatal(err)
			}
			want := "connection-timeout"
			if tc.name == "silent after TLS" {
				// No stream header yet: the server may answer with a header
				// and the error, or just close.
				e, err := c.next(bound + 5*time.Second)
				el := time.Since(start)
				for err == nil && e.Name == evHeader {
					e, err = c.next(bound + 5*time.Second)
				}
				if errors.Is(err, errTimeout) {
					t.Fatalf("still open %v after connecting silently; want closed after %v", el, bound)
				}
				if err == nil && streamErrorCondition(e) != want {
					t.Errorf("silent connection: got %v, want <%s/> or a plain close", e, want)
				}
				if el < bound-500*time.Millisecond {
					t.Errorf("closed after %v, before the %v bound", el, bound)
				}
				return
			}
			if err := expectStreamError(c, want, bound+5*time.Second); err != nil {
				t.Error(err)
			}
			if el := time.Since(start); el < bound-500*time.Millisecond || el > bound+5*time.Second {
				t.Errorf("closed after %v, want about %v", el, bound)
			}
		})
	}
	t.Run("bound session survives", func(t *testing.T) {
		time.Sleep(bound + time.Second)
		if err := good.send(fmt.Sprintf("<message to='%s'><body>ok</body></message>", good.JID)); err != nil {
			t.Fatal(err)
		}
		if _, err := good.expect("own message after the auth timeout passed", 5*time.Second, func(e *elem) bool {
			return e.is(nsClient, "message")
		}); err != nil {
			t.Errorf("a bound session was hit by the auth timeout: %v", err)
		}
	})
}

// TestSASLBackoff: repeated wrong passwords from one address get slower,
// while another account logging in from elsewhere is not held up.
func TestSASLBackoff(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	victimPw, otherPw := randomPassword(t), randomPassword(t)
	s.AddUser(t, "victim", victimPw)
	s.AddUser(t, "bystander", otherPw)
	attacker := nextSource()

	var lat []time.Duration
	delayed := false
	for i := 1; i <= 10 && !delayed; i++ {
		c, err := dialTLS(s.C2STLS, s.Domain, attacker)
		if err != nil {
			// Refusing the connection outright is a form of back-off too.
			t.Logf("attempt %d: connection refused: %v", i, err)
			delayed = true
			break
		}
		if err := c.open(); err != nil {
			t.Logf("attempt %d: stream refused: %v", i, err)
			c.Close()
			delayed = true
			break
		}
		start := time.Now()
		err = c.auth("victim", "wrong-"+victimPw, "SCRAM-SHA-256")
		d := time.Since(start)
		c.Close()
		var se *saslError
		switch {
		case errors.As(err, &se) && se.Condition == "not-authorized":
		case err == nil:
			t.Fatalf("attempt %d: wrong password accepted", i)
		default:
			t.Logf("attempt %d: %v", i, err)
		}
		lat = append(lat, d)
		if i == 1 && d > time.Second {
			t.Errorf("the first failure already took %v: back-off must grow with repeated failures, not punish the first typo", d)
		}
		if d >= time.Second {
			delayed = true
			// While this address is throttled, an honest login elsewhere works.
			start := time.Now()
			c, err := login(s.C2STLS, s.Domain, nextSource(), "bystander", otherPw, "")
			if err != nil {
				t.Errorf("bystander login from another address during the back-off: %v", err)
			} else {
				c.Close()
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("bystander login from another address took %v during the back-off", d)
				}
			}
		}
	}
	t.Logf("failure latencies from %s: %v", attacker, lat)
	if !delayed {
		t.Errorf("10 wrong passwords from %s in a row, none delayed by ≥1s (latencies %v): no back-off", attacker, lat)
	}
}

// TestStartTLSWhitespace: go-sendxmpp (go-xmpp) writes "<starttls/>\n", so
// a newline is on the wire before <proceed/>. Whitespace between elements is
// legal XML; the server must discard it rather than feed it to the TLS
// handshake or drop the connection. (prosody accepts it.)
func TestStartTLSWhitespace(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	pw := randomPassword(t)
	s.AddUser(t, "spacey", pw)
	for _, req := range []string{
		"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n",
		"\n  <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\r\n\t",
	} {
		c, err := dialStartTLSWith(s.C2S, s.Domain, nextSource(), req)
		if err != nil {
			t.Errorf("STARTTLS with %q: %v", req, err)
			continue
		}
		if err := c.open(); err != nil {
			t.Errorf("stream after STARTTLS with %q: %v", req, err)
		} else if err := c.auth("spacey", pw, "SCRAM-SHA-256"); err != nil {
			t.Errorf("login after STARTTLS with %q: %v", req, err)
		}
		c.Close()
	}
}

// manyAttrsTag is issue 9's probe: one start tag with 32,000 attributes
// (short distinct names, about 230 KB), within the post-auth stanza size.
// The names start with an upper-case letter, so none is "to" or "type": a
// duplicate would end the old parser's pairwise check early.
func manyAttrsTag(to string) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789"
	var b strings.Builder
	b.WriteString("<message to='" + to + "' type='chat'")
	for i := range 32000 {
		name := []byte{' ', chars[i%26]}
		for j := i / 26; j > 0; j /= 63 {
			name = append(name, chars[j%63])
		}
		b.Write(name)
		b.WriteString("=''")
	}
	b.WriteString("><body>x</body></message>")
	return b.String()
}

// TestManyAttributes: issue 9's probe against the running server. One tag
// with 32,000 attributes cost the server 1.9 s of CPU (every pair of
// attributes compared for duplicates) and was then accepted; six such
// connections raised a bystander's ping from 0.1 ms to 86 ms median. Each
// attacker must get a policy-violation stream error, and the bystander's
// pings must be answered throughout.
func TestManyAttributes(t *testing.T) {
	t.Parallel()
	if backend != "xmppd" {
		t.Skip("the attribute limit is xmppd's (stream.Limits.MaxAttrs)")
	}
	s := startServer(t, serverOpts{})
	byPw, attPw := randomPassword(t), randomPassword(t)
	s.AddUser(t, "bystander", byPw)
	s.AddUser(t, "attacker", attPw)
	by, err := login(s.C2STLS, s.Domain, nextSource(), "bystander", byPw, "b")
	if err != nil {
		t.Fatal(err)
	}
	defer by.Close()
	tag := manyAttrsTag(by.JID)
	if len(tag) > postAuthMaxBytes {
		t.Fatalf("the probe is %d bytes, over the %d-byte stanza limit: it would test the size limit instead", len(tag), postAuthMaxBytes)
	}

	// Log in first: the attack is the tag, not the SCRAM exchanges.
	const attackers = 6
	conns := make([]*xconn, attackers)
	for i := range conns {
		c, err := login(s.C2STLS, s.Domain, nextSource(), "attacker", attPw, fmt.Sprintf("a%d", i))
		if err != nil {
			t.Fatalf("attacker %d login: %v", i, err)
		}
		defer c.Close()
		conns[i] = c
	}
	errs := make(chan error, attackers)
	for i, c := range conns {
		go func() {
			if err := c.send(tag); err != nil {
				errs <- fmt.Errorf("attacker %d sending the tag: %w", i, err)
				return
			}
			if err := expectStreamError(c, "policy-violation", 20*time.Second); err != nil {
				errs <- fmt.Errorf("attacker %d: %w", i, err)
				return
			}
			errs <- nil
		}()
	}

	// The bystander pings while the attackers send: at most 200 pings,
	// until every attacker has its answer; each must come within 5 s.
	var rtts []time.Duration
	pending := attackers
	for i := 0; i < 200 && pending > 0; i++ {
		select {
		case err := <-errs:
			pending--
			if err != nil {
				t.Error(err)
			}
		default:
		}
		start := time.Now()
		if err := by.ping(fmt.Sprintf("p%d", i), 5*time.Second); err != nil {
			t.Fatalf("the bystander's ping %d during the attack: %v", i, err)
		}
		rtts = append(rtts, time.Since(start))
	}
	for ; pending > 0; pending-- {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d attackers had no answer 30 s after sending the tag", pending)
		}
	}
	if err := by.ping("after", 5*time.Second); err != nil {
		t.Fatalf("the bystander's ping after the attack: %v", err)
	}
	// Timing is logged, not asserted: the machine may be busy.
	for i := 1; i < len(rtts); i++ { // insertion sort: 200 at most
		for j := i; j > 0 && rtts[j] < rtts[j-1]; j-- {
			rtts[j], rtts[j-1] = rtts[j-1], rtts[j]
		}
	}
	if len(rtts) > 0 {
		t.Logf("bystander pings during the attack: %d, median %v, max %v", len(rtts), rtts[len(rtts)/2], rtts[len(rtts)-1])
	}
}

// TestStreamHeaderOddities: issue 9's minor findings. A self-closed stream
// header is a stream that has already ended: the server must close at once
// (it waited for the 60 s authentication timeout). A second XML
// declaration before the header is refused (XML allows one, and first).
func TestStreamHeaderOddities(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOpts{})
	good := streamHeader(s.Domain, nsClient, nsStreams)
	t.Run("self-closed header", func(t *testing.T) {
		c, err := dialTLS(s.C2STLS, s.Domain, nextSource())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.send(strings.TrimSuffix(good, ">") + "/>"); err != nil {
			t.Fatal(err)
		}
		// Whatever comes first (a header and features, a stream error),
		// the connection must end well before the auth timeout.
		deadline := time.Now().Add(10 * time.Second)
		for {
			e, err := c.next(time.Until(deadline))
			if errors.Is(err, errTimeout) {
				t.Fatalf("still open 10 s after a self-closed stream header; the server sent: %s", c.rec)
			}
			if err != nil {
				return // the connection ended
			}
			if cond := streamErrorCondition(e); cond != "" {
				t.Logf("the server answered with <%s/>", cond)
			}
		}
	})
	t.Run("two XML declarations", func(t *testing.T) {
		if backend != "xmppd" {
			t.Skip("the condition for a second declaration differs between servers")
		}
		c, err := dialTLS(s.C2STLS, s.Domain, nextSource())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.send("<?xml version='1.0'?>" + good); err != nil {
			t.Fatal(err)
		}
		if err := expectStreamError(c, "restricted-xml", 10*time.Second); err != nil {
			t.Error(err)
		}
	})
}

// TestAttributeLimits: the attribute limits at their boundaries against the
// running server (xmppd/stream's PreAuthLimits/PostAuthLimits MaxAttrs,
// repeated here on purpose like the other limits): namespace declarations
// count as attributes.
func TestAttributeLimits(t *testing.T) {
	t.Parallel()
	if backend != "xmppd" {
		t.Skip("the attribute limit is xmppd's (stream.Limits.MaxAttrs)")
	}
	const preAuthMaxAttrs, postAuthMaxAttrs = 64, 256
	s := startServer(t, serverOpts{})
	pw := randomPassword(t)
	s.AddUser(t, "counter", pw)
	// extra returns n attributes x0='' x1='' … (distinct, none a real one).
	extra := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, " x%d=''", i)
		}
		return b.String()
	}
	// <auth/> carries xmlns and mechanism; <message/> to, type and id.
	auth := func(attrs int) string {
		return "<auth xmlns='" + saslNS + "' mechanism='SCRAM-SHA-256'" + extra(attrs-2) + "/>"
	}
	message := func(to string, attrs int) string {
		return "<message to='" + to + "' type='chat' id='attrs'" + extra(attrs-3) + "><body>attrs</body></message>"
	}
	t.Run("pre-auth at the limit", func(t *testing.T) {
		c, err := dialTLS(s.C2STLS, s.Domain, nextSource())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.open(); err != nil {
			t.Fatal(err)
		}
		c.send(auth(preAuthMaxAttrs))
		checkSASLOnly(t, c)
	})
	t.Run("pre-auth over the limit", func(t *testing.T) {
		c, err := dialTLS(s.C2STLS, s.Domain, nextSource())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.open(); err != nil {
			t.Fatal(err)
		}
		c.send(auth(preAuthMaxAttrs + 1))
		if err := expectStreamError(c, "policy-violation", 10*time.Second); err != nil {
			t.Error(err)
		}
	})
	t.Run("post-auth at the limit", func(t *testing.T) {
		c, err := login(s.C2STLS, s.Domain, nextSource(), "counter", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.send(message(c.JID, postAuthMaxAttrs))
		if _, err := c.expect("the message with the most attributes allowed", 5*time.Second, func(e *elem) bool {
			return e.is(nsClient, "message") && e.attr("id") == "attrs"
		}); err != nil {
			t.Error(err)
		}
	})
	t.Run("post-auth over the limit", func(t *testing.T) {
		c, err := login(s.C2STLS, s.Domain, nextSource(), "counter", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.send(message(c.JID, postAuthMaxAttrs+1))
		if err := expectStreamError(c, "policy-violation", 10*time.Second); err != nil {
			t.Error(err)
		}
	})
	t.Run("post-auth declarations count", func(t *testing.T) {
		c, err := login(s.C2STLS, s.Domain, nextSource(), "counter", pw, "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.send("<message to='" + c.JID + "' type='chat' id='attrs' xmlns:q='urn:example:q'" + extra(postAuthMaxAttrs-3) + "/>")
		if err := expectStreamError(c, "policy-violation", 10*time.Second); err != nil {
			t.Error(err)
		}
	})
}
