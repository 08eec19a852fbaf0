package c2s

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hearthchat/hearth/xmppd/router"
	"github.com/hearthchat/hearth/xmppd/sasl"
	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
	"mellium.im/xmpp/jid"
)

// SASL2 (XEP-0388) with Bind 2 (XEP-0386), FAST tokens (XEP-0484) and
// XEP-0198 resumption inline: a phone that comes back logs in, binds (or
// resumes) and turns on carbons and stream management in one round trip
// (FAST) or two (SCRAM). The mechanisms, the attempt count, the back-off
// and the failure conditions are SASL1's (auth.go); what differs is the
// framing, and that <success/> carries the session's start. Which inline
// features exist is the server's business (server/inline.go): this file
// knows none of them except stream management's <resume/>, which c2s
// already answers for SASL1 logins (bind.go).

const (
	nsSASL2 = "urn:xmpp:sasl:2"
	nsBind2 = "urn:xmpp:bind:0"
	nsFAST  = "urn:xmpp:fast:0"
)

// auth2 is a SASL2 exchange in progress.
type auth2 struct {
	req   *stream.Element // the <authenticate/>, whose inline requests <success/> answers
	ua    userAgent
	fast  bool // authenticated with a FAST token
	renew bool // ... that should be replaced on this login
}

// userAgent is XEP-0388's <user-agent/>: id names the client install
// (FAST tokens and the admin pages' device list hang off it).
type userAgent struct{ id, software, device string }

func parseUserAgent(req *stream.Element) userAgent {
	u := req.Child(nsSASL2, "user-agent")
	if u == nil {
		return userAgent{}
	}
	ua := userAgent{
		software: clip(strings.TrimSpace(u.ChildText(nsSASL2, "software")), 64),
		device:   clip(strings.TrimSpace(u.ChildText(nsSASL2, "device")), 64),
	}
	// XEP-0388 asks for a UUID; anything short and plain is kept (it
	// becomes part of a database key).
	if id := u.Get("id"); len(id) > 0 && len(id) <= 64 && strings.Trim(id, "0123456789abcdefABCDEF-") == "" {
		ua.id = strings.ToLower(id)
	}
	return ua
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	for len(string(r)) > n {
		r = r[:len(r)-1]
	}
	return string(r)
}

// authentication is the SASL2 stream feature: the mechanisms advertised
// for SASL1 (x.mechs), and what may be asked for inline.
func (x *conn) authentication() *stream.Element {
	srv := x.c.cfg.Server
	el := stream.New(nsSASL2, "authentication")
	for _, m := range x.mechs {
		el.Add(stream.New(nsSASL2, "mechanism").AddText(m))
	}
	feats := stream.New(nsBind2, "inline")
	for _, f := range srv.BindFeatures() {
		feats.Add(stream.New(nsBind2, "feature", "var", f.Var))
	}
	inline := stream.New(nsSASL2, "inline").Add(stream.New(nsBind2, "bind").Add(feats))
	if srv.Store != nil {
		inline.Add(stream.New(nsFAST, "fast").Add(stream.New(nsFAST, "mechanism").AddText(sasl.HTSHA256None)))
	}
	inline.Add(srv.AuthInlines()...)
	return el.Add(inline)
}

// sasl2 handles a SASL2 element before authentication.
func (x *conn) sasl2(el *stream.Element) bool {
	switch el.Local {
	case "authenticate":
		x.attempts++
		x.scram = nil
		x.a2 = &auth2{req: el, ua: parseUserAgent(el)}
		var in []byte
		if t := strings.TrimSpace(el.ChildText(nsSASL2, "initial-response")); t != "" && t != "=" {
			var err error
			if in, err = base64.StdEncoding.DecodeString(t); err != nil {
				return x.saslFailure("incorrect-encoding", "")
			}
		}
		switch mech := el.Get("mechanism"); {
		case mech == sasl.Plain && x.c.cfg.AllowPlain && x.overTLS:
			user, err := x.c.auth.VerifyPlain(in)
			if err != nil {
				return x.scramFailure(err, user)
			}
			return x.success2(user, nil)
		case mech == sasl.HTSHA256None && x.c.cfg.Server.Store != nil:
			return x.fastLogin(mech, in)
		}
		s, err := x.c.auth.Start(el.Get("mechanism"), x.binding(), x.offerPlus && !x.cbRefused)
		if err != nil {
			return x.scramFailure(err, "")
		}
		s.Advertised(x.mechs, x.cbTypes, len(x.cbTypes) > 0)
		x.scram = s
		if in == nil {
			// Client-first, without its first message: ask for it.
			return x.write([]byte("<challenge xmlns='"+nsSASL2+"'/>")) == nil
		}
		return x.scramStep(in)
	case "response":
		if x.scram == nil || x.a2 == nil {
			x.a2 = &auth2{}
			return x.saslFailure("malformed-request", "no exchange in progress")
		}
		in, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text()))
		if err != nil {
			return x.saslFailure("incorrect-encoding", "")
		}
		return x.scramStep(in)
	case "abort":
		x.scram = nil
		x.a2 = &auth2{}
		return x.saslFailure("aborted", "")
	}
	x.a2 = &auth2{}
	return x.saslFailure("malformed-request", "")
}

// fastLogin checks a FAST token (HT-SHA-256-NONE). A wrong, expired or
// replayed token counts like a wrong password.
func (x *conn) fastLogin(mech string, in []byte) bool {
	a := x.a2
	name, proof, err := sasl.ParseHT(in)
	if err != nil {
		return x.saslFailure("malformed-request", "")
	}
	user, err := prepUser(name)
	if err != nil {
		return x.scramFailure(sasl.ErrNotAuthorized, name)
	}
	if a.ua.id == "" {
		// Tokens belong to a device (XEP-0484).
		return x.scramFailure(sasl.ErrNotAuthorized, user)
	}
	if x.c.cfg.LoginAllowed != nil && !x.c.cfg.LoginAllowed(user) {
		return x.scramFailure(sasl.ErrNotAuthorized, user)
	}
	st := x.c.cfg.Server.Store
	resp, renew, err := st.UseFAST(user, a.ua.id, mech, proof, time.Now())
	if errors.Is(err, store.ErrFASTRefused) {
		return x.scramFailure(sasl.ErrNotAuthorized, user)
	}
	if err != nil {
		x.c.cfg.Log.Error("fast token check", "user", user, "err", err)
		return x.saslFailure("temporary-auth-failure", "")
	}
	a.fast, a.renew = true, renew
	if f := a.req.Child(nsFAST, "fast"); f != nil && (f.Get("invalidate") == "true" || f.Get("invalidate") == "1") {
		// The client logs in one last time with it (XEP-0484 §
		// invalidation): the token ends now.
		if err := st.RevokeFAST(user, a.ua.id); err != nil {
			x.c.cfg.Log.Error("fast token revoke", "user", user, "err", err)
		}
		a.renew = false
	}
	return x.success2(user, resp)
}

// success2 ends a successful SASL2 exchange: the device is recorded, a
// FAST token issued when asked for, and the session resumed or bound as
// the <authenticate/> asked, all in one <success/>, followed by the
// features of the authenticated stream (no stream restart).
func (x *conn) success2(user string, data []byte) bool {
	a := x.a2
	x.a2 = nil
	x.user = user
	srv := x.c.cfg.Server
	if a.ua.id != "" && srv.Store != nil {
		if err := srv.Store.SeenDevice(user, a.ua.id, a.ua.software, a.ua.device, time.Now()); err != nil {
			x.c.cfg.Log.Error("record device", "user", user, "err", err)
		}
	}
	token := x.issueToken(user, a)
	head := func(aid string) string {
		b := "<success xmlns='" + nsSASL2 + "'>"
		if data != nil {
			b += "<additional-data>" + base64.StdEncoding.EncodeToString(data) + "</additional-data>"
		}
		return b + "<authorization-identifier>" + string(stream.AppendEscaped(nil, aid, false)) + "</authorization-identifier>"
	}
	resumeFailed := ""
	if r := a.req.Child(nsSM, "resume"); r != nil {
		sess, h, cond := x.resumable(r)
		if sess != nil {
			prefix := head(sess.JID.String()) +
				fmt.Sprintf("<resumed xmlns='%s' previd='%s' h='%d'/>", nsSM, stream.AppendEscaped(nil, r.Get("previd"), true), sess.InCount()) +
				token + "</success>" + boundFeatures(x, sess)
			gen, err := sess.Attach(x.nc, h, []byte(prefix))
			if err == nil {
				x.adopt(sess, gen)
				return true
			}
			cond = "unexpected-request"
		}
		resumeFailed = "<failed xmlns='" + nsSM + "'><" + cond + " xmlns='" + stream.NSStanzaE + "'/></failed>"
	}
	if b := a.req.Child(nsBind2, "bind"); b != nil && len(srv.Router.Sessions(user)) < router.MaxResources {
		return x.bind2(user, a, b, head, resumeFailed, token)
	}
	// Authenticated only: the client binds (or resumes) as after SASL1.
	out := head(user+"@"+srv.Domain) + resumeFailed + token + "</success><stream:features>"
	var bb []byte
	for _, f := range x.features() {
		bb = f.Append(bb, stream.NSClient)
	}
	return x.write([]byte(out+string(bb)+"</stream:features>")) == nil
}

// resumable finds the session a SASL2 <resume/> names; cond is the
// XEP-0198 failure when there is none.
func (x *conn) resumable(r *stream.Element) (*session.Session, uint32, string) {
	h, err := strconv.ParseUint(r.Get("h"), 10, 32)
	if err != nil {
		return nil, 0, "bad-request"
	}
	sess := x.c.cfg.Server.Resume(x.user, r.Get("previd"))
	if sess == nil {
		return nil, 0, "item-not-found"
	}
	return sess, uint32(h), ""
}

// bind2 binds a resource inside <success/> (XEP-0386) and turns on the
// inline features the client asked for. The session is not routable until
// <success/> is queued whole, so nothing addressed to it can land inside.
func (x *conn) bind2(user string, a *auth2, b *stream.Element, head func(string) string, resumeFailed, token string) bool {
	srv := x.c.cfg.Server
	full, err := jid.New(user, srv.Domain, resourceFor(user, a.ua, b.ChildText(nsBind2, "tag")))
	if err != nil {
		x.streamError("internal-server-error", "")
		return false
	}
	sess := session.New(x.nc, full, stream.NSClient)
	x.adopt(sess, 1)
	sess.SendRaw([]byte(head(full.String()) + resumeFailed + "<bound xmlns='" + nsBind2 + "'>"))
	feats := srv.BindFeatures()
	for _, req := range b.Children() {
		for _, f := range feats {
			if f.Var == req.Space {
				x.inline(f.Handle, sess, req)
				break
			}
		}
	}
	sess.SendRaw([]byte("</bound>" + token + "</success>" + boundFeatures(x, sess)))
	replaced, err := srv.Router.Bind(sess)
	if err != nil {
		// Another login of the account took the last resource slot
		// since success2 counted.
		sess.CloseWithError("resource-constraint", "too many resources")
		return false
	}
	if replaced != nil {
		replaced.CloseWithError("conflict", "replaced by a new connection")
	}
	srv.Bound(sess)
	return true
}

// inline runs a module's Bind 2 handler; a panic in it ends this login,
// not the server.
func (x *conn) inline(h func(*session.Session, *stream.Element), sess *session.Session, req *stream.Element) {
	defer func() {
		if r := recover(); r != nil {
			x.c.cfg.Log.Error("bind 2 inline feature panicked", "feature", req.Space, "panic", r)
			sess.CloseWithError("internal-server-error", "")
		}
	}()
	h(sess, req)
}

// boundFeatures are the stream features after a Bind 2 or resumption in
// SASL2: those of a bound session, without stream management once it is
// on (a client seeing <sm/> again would try to resume a second time).
func boundFeatures(x *conn, sess *session.Session) string {
	b := []byte("<stream:features>")
	on, _ := sess.AcksEnabled()
	for _, f := range x.c.cfg.Server.StreamFeatures(sess) {
		if on && f.Space == nsSM {
			continue
		}
		b = f.Append(b, stream.NSClient)
	}
	return string(append(b, "</stream:features>"...))
}

// resourceFor makes a Bind 2 resource (XEP-0386 leaves it to the server):
// the client's tag (or software), a part derived from the user-agent id
// that stays the same for that install (so other devices and the admin
// pages can tell installs apart across logins, without showing the id),
// and a random suffix so that two sessions never collide.
func resourceFor(user string, ua userAgent, tag string) string {
	prefix := resourceWord(tag)
	if prefix == "" {
		prefix = resourceWord(ua.software)
	}
	if prefix == "" {
		prefix = "hearth"
	}
	if ua.id != "" {
		h := sha256.Sum256([]byte(user + "\x00" + ua.id))
		prefix += "." + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:5]))
	}
	r := make([]byte, 3)
	rand.Read(r)
	return prefix + "." + hex.EncodeToString(r)
}

// resourceWord keeps letters, digits, '-' and '_' of s (at most 32).
func resourceWord(s string) string {
	var b strings.Builder
	for _, c := range s {
		if unicode.IsLetter(c) || unicode.IsDigit(c) || c == '-' || c == '_' {
			b.WriteRune(c)
		}
		if b.Len() >= 32 {
			break
		}
	}
	return b.String()
}

// issueToken makes a FAST token when the client asked for one (or used
// one due for renewal) and returns its <token/> element ("" for none).
func (x *conn) issueToken(user string, a *auth2) string {
	st := x.c.cfg.Server.Store
	if st == nil || a.ua.id == "" {
		return ""
	}
	mech := ""
	if rt := a.req.Child(nsFAST, "request-token"); rt != nil {
		mech = rt.Get("mechanism")
	} else if a.fast && a.renew {
		mech = sasl.HTSHA256None
	}
	if mech != sasl.HTSHA256None {
		return ""
	}
	tok, exp, err := st.IssueFAST(user, a.ua.id, mech, time.Now())
	if err != nil {
		x.c.cfg.Log.Error("fast token", "user", user, "err", err)
		return ""
	}
	return "<token xmlns='" + nsFAST + "' expiry='" + exp.Format(time.RFC3339) + "' token='" + tok + "'/>"
}
