package c2s

import (
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/hearthchat/hearth/xmppd/sasl"
	"github.com/hearthchat/hearth/xmppd/stream"
	"mellium.im/xmpp/jid"
)

// SASL (RFC 6120 §6): SCRAM with channel binding through xmppd/sasl, and PLAIN over TLS when allowed.

// maxCBRetries is how many -PLUS attempts with a binding type we lack a
// connection may make without them counting as attempts: one per -PLUS
// mechanism we offer is what a client trying each in turn needs (Debian's
// slixmpp tries SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS with tls-unique
// over TLS 1.3, then plain SCRAM). Past that they count, so a connection
// cannot loop on them until the auth timeout.
const maxCBRetries = 4

// saslFailure answers with a SASL <failure/>; the connection ends once it
// used up MaxAuthAttempts (each <auth/> counts one).
func (x *conn) saslFailure(cond, text string) bool {
	b := "<failure xmlns='" + nsSASL + "'><" + cond + "/>"
	if x.a2 != nil {
		// SASL2 (XEP-0388): the same conditions, in RFC 6120's namespace.
		b = "<failure xmlns='" + nsSASL2 + "'><" + cond + " xmlns='" + nsSASL + "'/>"
		x.a2 = nil
	}
	if text != "" {
		b += "<text xml:lang='en'>" + string(stream.AppendEscaped(nil, text, false)) + "</text>"
	}
	x.scram = nil
	if x.write([]byte(b+"</failure>")) != nil {
		return false
	}
	if x.attempts >= x.c.cfg.MaxAuthAttempts {
		x.streamError("policy-violation", "too many failed authentication attempts")
		return false
	}
	return true
}

// scramFailure answers a failed SCRAM step. A wrong password (or unknown
// name) feeds the back-off; the channel-binding rules' failures are no
// password guesses and do not: they carry RFC 5802 §7's server-error-value
// ("e=...") as the failure's text, the only place RFC 6120 §6.4.5 leaves
// for it, since SCRAM's server-final-message is never reached.
func (x *conn) scramFailure(err error, name string) bool {
	if e := sasl.ServerError(err); e != "" {
		cond := "not-authorized"
		if errors.Is(err, sasl.ErrUnsupportedCB) || errors.Is(err, sasl.ErrNoCB) {
			// The mechanism as asked for (this binding type) is one we do
			// not support: the client should try another mechanism, not
			// tell its user the password is wrong.
			cond = "invalid-mechanism"
			if x.cbRetries < maxCBRetries {
				// Give back the attempt its <auth/> took.
				x.cbRetries++
				x.attempts--
			}
		}
		if errors.Is(err, sasl.ErrUnsupportedCB) {
			// Its retry with the "y" flag is then a fallback we caused,
			// not a downgrade by an attacker.
			x.cbRefused = true
		}
		return x.saslFailure(cond, "e="+e)
	}
	if errors.Is(err, sasl.ErrNotAuthorized) {
		if d := x.c.ips.failed(x.backoffKey(name)); d > 0 {
			// Slow down guessing. Only this connection waits; others
			// are unaffected, and a right password is never delayed.
			time.Sleep(d)
		}
		return x.saslFailure("not-authorized", "")
	}
	return x.saslFailure(err.Error(), "")
}

// backoffKey is what SASL failures are counted under: the source address,
// except over the onion listener, where every connection comes from tor's
// one address and counting by it let 20 strangers lock out every onion
// user. There it is the account name tried: guessing one member's password
// over Tor gets slower, while everyone else (and that member's right
// password) is not held up.
func (x *conn) backoffKey(name string) string {
	if x.ip == OnionBucket {
		return OnionBucket + "\x00" + name
	}
	return x.ip
}

func (x *conn) sasl(el *stream.Element) bool {
	var in []byte
	switch el.Local {
	case "auth":
		x.attempts++
		x.a2 = nil
		// PLAIN sends the password itself: never without TLS under the
		// stream (a WebSocket over plain HTTP), even when allowed.
		if el.Get("mechanism") == sasl.Plain && x.c.cfg.AllowPlain && x.overTLS {
			return x.plain(el)
		}
		s, err := x.c.auth.Start(el.Get("mechanism"), x.binding(), x.offerPlus && !x.cbRefused)
		if err != nil {
			return x.scramFailure(err, "")
		}
		s.Advertised(x.mechs, x.cbTypes, len(x.cbTypes) > 0)
		x.scram = s
	case "response":
		if x.scram == nil || x.a2 != nil {
			return x.saslFailure("malformed-request", "no exchange in progress")
		}
	case "abort":
		x.scram, x.a2 = nil, nil
		return x.saslFailure("aborted", "")
	default:
		x.a2 = nil
		return x.saslFailure("malformed-request", "")
	}
	if t := strings.TrimSpace(el.Text()); t != "" && t != "=" {
		var err error
		if in, err = base64.StdEncoding.DecodeString(t); err != nil {
			return x.saslFailure("incorrect-encoding", "")
		}
	}
	if in == nil && el.Local == "auth" {
		// SCRAM is client-first: an empty initial response asks for an
		// empty challenge.
		return x.write([]byte("<challenge xmlns='"+nsSASL+"'>=</challenge>")) == nil
	}
	return x.scramStep(in)
}

// scramStep feeds the client's message to the SCRAM exchange and answers
// in the profile that started it (SASL or SASL2).
func (x *conn) scramStep(in []byte) bool {
	out, done, err := x.scram.Next(in)
	if err != nil {
		return x.scramFailure(err, x.scram.Name())
	}
	enc := base64.StdEncoding.EncodeToString(out)
	ns := nsSASL
	if x.a2 != nil {
		ns = nsSASL2
	}
	if !done {
		return x.write([]byte("<challenge xmlns='"+ns+"'>"+enc+"</challenge>")) == nil
	}
	user := x.scram.User()
	x.scram = nil
	if x.a2 != nil {
		return x.success2(user, out)
	}
	x.user = user
	if x.write([]byte("<success xmlns='"+nsSASL+"'>"+enc+"</success>")) != nil {
		return false
	}
	x.headerSent = false
	x.p.Restart()
	return true
}

func (x *conn) plain(el *stream.Element) bool {
	in, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text()))
	if err != nil {
		return x.saslFailure("incorrect-encoding", "")
	}
	user, err := x.c.auth.VerifyPlain(in)
	if err != nil {
		return x.scramFailure(err, user)
	}
	x.user = user
	if x.write([]byte("<success xmlns='"+nsSASL+"'/>")) != nil {
		return false
	}
	x.headerSent = false
	x.p.Restart()
	return true
}

func prepUser(name string) (string, error) {
	j, err := jid.New(name, "localhost", "")
	if err != nil {
		return "", err
	}
	return j.Localpart(), nil
}
