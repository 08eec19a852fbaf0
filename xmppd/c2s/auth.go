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

func (x *conn) saslFailure(cond, text string) bool {
	b := "<failure xmlns='" + nsSASL + "'><" + cond + "/>"
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

func (x *conn) sasl(el *stream.Element) bool {
	srv := x.c.cfg.Server
	var in []byte
	switch el.Local {
	case "auth":
		x.attempts++
		if el.Get("mechanism") == sasl.Plain && x.c.cfg.AllowPlain {
			return x.plain(el)
		}
		s, err := sasl.New(el.Get("mechanism"), x.binding(), x.offerPlus && !x.cbRefused, srv.Store.Account, prepUser)
		if err != nil {
			return x.saslFailure("invalid-mechanism", "")
		}
		x.scram = s
	case "response":
		if x.scram == nil {
			return x.saslFailure("malformed-request", "no exchange in progress")
		}
	case "abort":
		x.scram = nil
		return x.saslFailure("aborted", "")
	default:
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
	out, done, err := x.scram.Next(in)
	if err != nil {
		if errors.Is(err, sasl.ErrNotAuthorized) {
			if d := x.c.ips.failed(x.ip); d > 0 {
				// Slow down guessing from this address. Only this
				// connection waits; others are unaffected.
				time.Sleep(d)
			}
			return x.saslFailure("not-authorized", "")
		}
		if errors.Is(err, sasl.ErrUnsupportedCB) {
			x.cbRefused = true
			return x.saslFailure("not-authorized", "channel binding type not supported; offered: tls-exporter, tls-server-end-point")
		}
		return x.saslFailure(err.Error(), "")
	}
	enc := base64.StdEncoding.EncodeToString(out)
	if !done {
		return x.write([]byte("<challenge xmlns='"+nsSASL+"'>"+enc+"</challenge>")) == nil
	}
	x.user = x.scram.User()
	x.scram = nil
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
	user, err := sasl.VerifyPlain(in, x.c.cfg.Server.Store.Account, prepUser)
	if err != nil {
		if errors.Is(err, sasl.ErrNotAuthorized) {
			if d := x.c.ips.failed(x.ip); d > 0 {
				time.Sleep(d)
			}
			return x.saslFailure("not-authorized", "")
		}
		return x.saslFailure(err.Error(), "")
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
