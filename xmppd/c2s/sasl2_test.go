package c2s_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/client"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/sasl"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	nsSASL2 = "urn:xmpp:sasl:2"
	nsBind2 = "urn:xmpp:bind:0"
	nsFAST  = "urn:xmpp:fast:0"
	nsSM    = "urn:xmpp:sm:3"
	phoneUA = "<user-agent id='d3b07384-d9a0-4c9b-8b5a-6a1f0e3c2b10'><software>Conversations</software><device>Alice's phone</device></user-agent>"
)

// s2login is one SASL2 login's outcome.
type s2login struct {
	end         *stream.Element // <success/> or <failure/>
	serverFirst string          // SCRAM's server-first-message
	trips       int             // client elements sent before the outcome
}

// sasl2Scram logs in with SASL2 and SCRAM-SHA-256, extra inside
// <authenticate/>, and checks the server signature on success.
func sasl2Scram(t *testing.T, c *xmpptest.Client, user, pw, extra string) s2login {
	t.Helper()
	cl, err := client.NewScram(sasl.SHA256, user, pw)
	if err != nil {
		t.Fatal(err)
	}
	c.Send(fmt.Sprintf("<authenticate xmlns='%s' mechanism='SCRAM-SHA-256'><initial-response>%s</initial-response>%s</authenticate>",
		nsSASL2, base64.StdEncoding.EncodeToString(cl.First()), extra))
	out := s2login{trips: 1}
	for {
		el := c.El()
		if el.Space != nsSASL2 {
			t.Fatalf("SASL2 exchange: %s", el)
		}
		switch el.Local {
		case "challenge":
			data, _ := base64.StdEncoding.DecodeString(el.Text())
			out.serverFirst = string(data)
			resp, err := cl.Final(data)
			if err != nil {
				t.Fatal(err)
			}
			c.Send("<response xmlns='" + nsSASL2 + "'>" + base64.StdEncoding.EncodeToString(resp) + "</response>")
			out.trips++
		case "success":
			data, _ := base64.StdEncoding.DecodeString(el.ChildText(nsSASL2, "additional-data"))
			if err := cl.Verify(data); err != nil {
				t.Fatalf("server signature: %v (%s)", err, el)
			}
			out.end = el
			return out
		default:
			out.end = el
			return out
		}
	}
}

func htMAC(token, label string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(label))
	return m.Sum(nil)
}

// sasl2Fast logs in with a FAST token (HT-SHA-256-NONE) and checks the
// server's answer on success.
func sasl2Fast(t *testing.T, c *xmpptest.Client, user, token, extra string) *stream.Element {
	t.Helper()
	ir := append([]byte(user+"\x00"), htMAC(token, "Initiator")...)
	c.Send(fmt.Sprintf("<authenticate xmlns='%s' mechanism='HT-SHA-256-NONE'><initial-response>%s</initial-response>%s</authenticate>",
		nsSASL2, base64.StdEncoding.EncodeToString(ir), extra))
	el := c.El()
	if el.Local == "success" {
		data, _ := base64.StdEncoding.DecodeString(el.ChildText(nsSASL2, "additional-data"))
		if !hmac.Equal(data, htMAC(token, "Responder")) {
			t.Fatalf("FAST success without the right responder: %s", el)
		}
	}
	return el
}

func mechanisms(f *stream.Element, space, local string) []string {
	var out []string
	for _, m := range f.Child(space, local).Children() {
		if m.Local == "mechanism" {
			out = append(out, m.Text())
		}
	}
	return out
}

func TestSASL2Feature(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	f := c.Open()
	a := f.Child(nsSASL2, "authentication")
	if a == nil {
		t.Fatalf("no SASL2 feature: %s", f)
	}
	if got, want := strings.Join(mechanisms(f, nsSASL2, "authentication"), " "), strings.Join(mechanisms(f, nsSASL, "mechanisms"), " "); got != want {
		t.Fatalf("SASL2 mechanisms %q, SASL1 %q", got, want)
	}
	in := a.Child(nsSASL2, "inline")
	var vars []string
	for _, fe := range in.Child(nsBind2, "bind").Child(nsBind2, "inline").Children() {
		vars = append(vars, fe.Get("var"))
	}
	if v := strings.Join(vars, " "); !strings.Contains(v, "urn:xmpp:carbons:2") || !strings.Contains(v, nsSM) {
		t.Fatalf("Bind 2 inline features %q: %s", v, a)
	}
	if in.Child(nsFAST, "fast").ChildText(nsFAST, "mechanism") != "HT-SHA-256-NONE" || in.Child(nsSM, "sm") == nil {
		t.Fatalf("inline FAST / sm missing: %s", a)
	}
}

// One login = authenticate + response: bound, carbons and stream
// management on, a FAST token, in the <success/>.
func TestSASL2Bind2(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	bind := "<bind xmlns='" + nsBind2 + "'><tag>Conversations</tag><enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='" + nsSM + "' resume='true'/></bind>"
	l := sasl2Scram(t, c, "alice", "alice-pw", phoneUA+bind+"<request-token xmlns='"+nsFAST+"' mechanism='HT-SHA-256-NONE'/>")
	s := l.end
	if s.Local != "success" || l.trips != 2 {
		t.Fatalf("after %d trips: %s", l.trips, s)
	}
	full := s.ChildText(nsSASL2, "authorization-identifier")
	if !strings.HasPrefix(full, "alice@"+xmpptest.Domain+"/Conversations.") {
		t.Fatalf("authorization identifier %q", full)
	}
	bound := s.Child(nsBind2, "bound")
	if bound == nil || bound.Child(nsSM, "enabled") == nil || bound.Child(nsSM, "enabled").Get("id") == "" {
		t.Fatalf("no stream management in <bound/>: %s", s)
	}
	if tok := s.Child(nsFAST, "token"); tok == nil || len(tok.Get("token")) < 40 || tok.Get("expiry") == "" {
		t.Fatalf("no FAST token: %s", s)
	}
	f := c.El()
	if f.Local != "features" || f.Child(nsSM, "sm") != nil || f.Child("urn:ietf:params:xml:ns:xmpp-bind", "bind") != nil {
		t.Fatalf("features after Bind 2: %s", f)
	}
	c.Send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
	if el := c.El(); el.Get("id") != "p1" || el.Get("type") != "result" || el.Get("to") != full {
		t.Fatalf("ping: %s", el)
	}

	// The same install again: the same resource prefix, another suffix.
	c2 := xmpptest.Dial(t, d.C2STLSAddr, true)
	c2.Open()
	full2 := sasl2Scram(t, c2, "alice", "alice-pw", phoneUA+"<bind xmlns='"+nsBind2+"'><tag>Conversations</tag></bind>").end.ChildText(nsSASL2, "authorization-identifier")
	if full2 == full || full2[:strings.LastIndex(full2, ".")] != full[:strings.LastIndex(full, ".")] {
		t.Fatalf("resources %q then %q: want one stable prefix", full, full2)
	}
	// Carbons were enabled inline: what alice's other resource sends
	// reaches the first one as a sent carbon.
	c2.El() // features
	c2.Send("<message to='bob@" + xmpptest.Domain + "' type='chat' id='m1'><body>hi</body></message>")
	for {
		el := c.El()
		if el.Local == "message" {
			if el.Child("urn:xmpp:carbons:2", "sent") == nil {
				t.Fatalf("want a sent carbon: %s", el)
			}
			break
		}
	}
}

// Without <bind/>: authenticated, then the RFC 6120 bind as after SASL1.
func TestSASL2WithoutBind(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	s := sasl2Scram(t, c, "alice", "alice-pw", "").end
	if s.Local != "success" || s.ChildText(nsSASL2, "authorization-identifier") != "alice@"+xmpptest.Domain {
		t.Fatalf("success: %s", s)
	}
	if f := c.El(); f.Child("urn:ietf:params:xml:ns:xmpp-bind", "bind") == nil {
		t.Fatalf("features: %s", f)
	}
	if got := c.Bind("laptop"); got != "alice@"+xmpptest.Domain+"/laptop" {
		t.Fatalf("bound %q", got)
	}
}

// Failures carry RFC 6120's conditions, count toward the same back-off
// and attempt limit as SASL1, and leave the stream usable.
func TestSASL2Failure(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	f := sasl2Scram(t, c, "alice", "wrong", "").end
	if f.Local != "failure" || f.Space != nsSASL2 || f.Child(nsSASL, "not-authorized") == nil {
		t.Fatalf("wrong password: %s", f)
	}
	if n := d.C2S.FailureCount("127.0.0.1"); n != 1 {
		t.Fatalf("back-off counted %d, want 1", n)
	}
	c.Send("<authenticate xmlns='" + nsSASL2 + "' mechanism='DIGEST-MD5'/>")
	if f := c.El(); f.Child(nsSASL, "invalid-mechanism") == nil {
		t.Fatalf("unknown mechanism: %s", f)
	}
	c.Send("<response xmlns='" + nsSASL2 + "'>eA==</response>")
	if f := c.El(); f.Space != nsSASL2 || f.Child(nsSASL, "malformed-request") == nil {
		t.Fatalf("response without exchange: %s", f)
	}
	if s := sasl2Scram(t, c, "alice", "alice-pw", "").end; s.Local != "success" {
		t.Fatalf("then the right password: %s", s)
	}
}

// XEP-0474: server-first-message carries h=, the hash of exactly what the
// features advertised, for SASL2 and SASL1 alike.
func TestDowngradeProtectionHash(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	f := c.Open()
	var cbs []string
	for _, cb := range f.Child("urn:xmpp:sasl-cb:0", "sasl-channel-binding").Children() {
		cbs = append(cbs, cb.Get("type"))
	}
	want := "h=" + sasl.DowngradeHash(sha256.New, mechanisms(f, nsSASL2, "authentication"), cbs, true)
	if l := sasl2Scram(t, c, "alice", "wrong", ""); !strings.HasSuffix(l.serverFirst, ","+want) {
		t.Fatalf("SASL2 server-first %q, want %s", l.serverFirst, want)
	}
	el := authFirst(c, "SCRAM-SHA-256", "n,,n=alice,r=abcdefgh")
	data, _ := base64.StdEncoding.DecodeString(el.Text())
	if !strings.HasSuffix(string(data), ","+want) {
		t.Fatalf("SASL1 server-first %q, want %s", data, want)
	}
}

func requestToken() string {
	return "<request-token xmlns='" + nsFAST + "' mechanism='HT-SHA-256-NONE'/>"
}

const fastEl = "<fast xmlns='" + nsFAST + "'/>"

// FAST: a token logs in once per round trip; rotated tokens leave the old
// one valid once more until the new one is used; after that a replay of
// the old one is refused (and counted like a wrong password); another
// device's id, an invalidated token and a password change refuse too.
func TestFASTTokens(t *testing.T) {
	d := xmpptest.Start(t, nil)
	conn := func() *xmpptest.Client {
		c := xmpptest.Dial(t, d.C2STLSAddr, true)
		c.Open()
		return c
	}
	tokenOf := func(s *stream.Element) string {
		t.Helper()
		tok := s.Child(nsFAST, "token")
		if tok == nil {
			t.Fatalf("no token: %s", s)
		}
		return tok.Get("token")
	}
	ok := func(s *stream.Element, what string) {
		t.Helper()
		if s.Local != "success" {
			t.Fatalf("%s: %s", what, s)
		}
	}
	refused := func(s *stream.Element, what string) {
		t.Helper()
		if s.Local != "failure" || s.Child(nsSASL, "not-authorized") == nil {
			t.Fatalf("%s: want not-authorized, got %s", what, s)
		}
	}
	t1 := tokenOf(sasl2Scram(t, conn(), "alice", "alice-pw", phoneUA+requestToken()).end)

	// FAST in one trip, with Bind 2.
	s := sasl2Fast(t, conn(), "alice", t1, phoneUA+fastEl+"<bind xmlns='"+nsBind2+"'/>")
	ok(s, "FAST login")
	if s.Child(nsBind2, "bound") == nil || s.Child(nsFAST, "token") != nil {
		t.Fatalf("FAST + Bind 2 (no token asked): %s", s)
	}
	other := strings.Replace(phoneUA, "d3b07384", "aaaaaaaa", 1)
	refused(sasl2Fast(t, conn(), "alice", t1, other+fastEl), "another device's id")
	refused(sasl2Fast(t, conn(), "bob", t1, phoneUA+fastEl), "another account")

	// Rotation: t2 replaces t1; t1 still works once (the client may never
	// have seen t2), and that login hands out t3 by itself.
	t2 := tokenOf(sasl2Fast(t, conn(), "alice", t1, phoneUA+fastEl+requestToken()))
	t3 := tokenOf(sasl2Fast(t, conn(), "alice", t1, phoneUA+fastEl))
	refused(sasl2Fast(t, conn(), "alice", t1, phoneUA+fastEl), "t1 replayed after its last use")
	refused(sasl2Fast(t, conn(), "alice", t2, phoneUA+fastEl), "t2, superseded before use")
	// Rotation, then the new token used: the old one is dead.
	t4 := tokenOf(sasl2Fast(t, conn(), "alice", t3, phoneUA+fastEl+requestToken()))
	ok(sasl2Fast(t, conn(), "alice", t4, phoneUA+fastEl), "t4")
	refused(sasl2Fast(t, conn(), "alice", t3, phoneUA+fastEl), "t3 replayed after t4 was used")
	if n := d.C2S.FailureCount("127.0.0.1"); n != 5 {
		t.Fatalf("refused tokens counted %d times toward the back-off", n)
	}

	// Invalidation (logout) ends it after that login.
	ok(sasl2Fast(t, conn(), "alice", t4, phoneUA+"<fast xmlns='"+nsFAST+"' invalidate='true'/>"), "last login")
	refused(sasl2Fast(t, conn(), "alice", t4, phoneUA+fastEl), "invalidated token")

	// A password change ends every token.
	t5 := tokenOf(sasl2Scram(t, conn(), "alice", "alice-pw", phoneUA+requestToken()).end)
	if err := d.Store.SetPassword("alice", "new-pw"); err != nil {
		t.Fatal(err)
	}
	refused(sasl2Fast(t, conn(), "alice", t5, phoneUA+fastEl), "token after a password change")

	devs, err := d.Store.Devices("alice")
	if err != nil || len(devs) != 1 || devs[0].Software != "Conversations" || devs[0].Device != "Alice's phone" || devs[0].LastUsed.IsZero() {
		t.Fatalf("devices %+v %v", devs, err)
	}
	if err := d.Server.DeleteAccount("alice"); err != nil {
		t.Fatal(err)
	}
	if devs, err := d.Store.Devices("alice"); err != nil || len(devs) != 0 {
		t.Fatalf("devices of a deleted account: %+v %v", devs, err)
	}
}

// XEP-0198 resumption inside SASL2: what arrived while the link was down
// comes after the <success/> that carries <resumed/>.
func TestSASL2InlineResume(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	s := sasl2Scram(t, c, "alice", "alice-pw", phoneUA+"<bind xmlns='"+nsBind2+"'><enable xmlns='"+nsSM+"' resume='true'/></bind>").end
	full := s.ChildText(nsSASL2, "authorization-identifier")
	id := s.Child(nsBind2, "bound").Child(nsSM, "enabled").Get("id")
	c.El() // features
	c.Raw.Close()

	bob := xmpptest.Login(t, d, "bob", "pc")
	bob.Send("<message to='" + full + "' type='chat' id='while-away'><body>missed</body></message>")

	c2 := xmpptest.Dial(t, d.C2STLSAddr, true)
	c2.Open()
	s = sasl2Scram(t, c2, "alice", "alice-pw", phoneUA+"<resume xmlns='"+nsSM+"' previd='"+id+"' h='0'/><bind xmlns='"+nsBind2+"'/>").end
	if s.Child(nsSM, "resumed") == nil || s.Child(nsBind2, "bound") != nil || s.ChildText(nsSASL2, "authorization-identifier") != full {
		t.Fatalf("inline resume: %s", s)
	}
	for {
		el := c2.El()
		if el.Local == "message" && el.Get("id") == "while-away" {
			break
		}
	}

	// Another account cannot take the session over with its id.
	c4 := xmpptest.Dial(t, d.C2STLSAddr, true)
	c4.Open()
	s = sasl2Scram(t, c4, "bob", "bob-pw", "<resume xmlns='"+nsSM+"' previd='"+id+"' h='0'/>").end
	if s.Child(nsSM, "failed").Child("", "item-not-found") == nil || s.ChildText(nsSASL2, "authorization-identifier") != "bob@"+xmpptest.Domain {
		t.Fatalf("resume with another account's id: %s", s)
	}

	// An unknown id: <failed/> inside <success/>, then Bind 2 goes ahead.
	c3 := xmpptest.Dial(t, d.C2STLSAddr, true)
	c3.Open()
	s = sasl2Scram(t, c3, "alice", "alice-pw", "<resume xmlns='"+nsSM+"' previd='nope' h='0'/><bind xmlns='"+nsBind2+"'/>").end
	if s.Child(nsSM, "failed").Child("", "item-not-found") == nil || s.Child(nsBind2, "bound") == nil {
		t.Fatalf("failed resume: %s", s)
	}
}
