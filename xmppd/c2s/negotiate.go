package c2s

import (
	"crypto/tls"
	"strings"

	"github.com/hearthchat/hearth/xmppd/sasl"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
	"github.com/hearthchat/hearth/xmppd/tlsconf"
	"mellium.im/xmpp/jid"
)

// Stream negotiation before authentication: the stream header, the features offered at each step, STARTTLS / direct TLS, and which element is allowed when.

func (x *conn) open(h *stream.Element) bool {
	srv := x.c.cfg.Server
	if h.Space != stream.NSStream || h.Local != "stream" {
		x.streamError("invalid-namespace", "")
		return false
	}
	if x.p.DefaultNS() != stream.NSClient {
		x.streamError("invalid-namespace", "the content namespace must be jabber:client")
		return false
	}
	if to := h.Get("to"); to != "" {
		d, err := jid.Parse(to)
		if err != nil || !strings.EqualFold(d.Domainpart(), srv.Domain) || d.Localpart() != "" || d.Resourcepart() != "" {
			x.streamError("host-unknown", "this server serves "+srv.Domain)
			return false
		}
	}
	if v := h.Get("version"); v == "" || !strings.HasPrefix(v, "1.") {
		x.streamError("unsupported-version", "")
		return false
	}
	b := x.header(newID())
	x.headerSent = true
	b = append(b, "<stream:features>"...)
	for _, f := range x.features() {
		b = f.Append(b, stream.NSClient)
	}
	b = append(b, "</stream:features>"...)
	return x.write(b) == nil
}

func (x *conn) features() []*stream.Element {
	switch {
	case !x.secure:
		return []*stream.Element{stream.New(nsTLS, "starttls").Add(stream.New(nsTLS, "required"))}
	case x.user == "":
		cb := x.binding()
		// What is advertised here is remembered: XEP-0474's downgrade
		// hash in the SCRAM exchange covers exactly this list.
		x.mechs, x.cbTypes = x.mechs[:0], x.cbTypes[:0]
		if len(cb.Data) > 0 {
			x.mechs = append(x.mechs, sasl.SHA256Plus, sasl.SHA1Plus)
			x.offerPlus = true
		}
		x.mechs = append(x.mechs, sasl.SHA256, sasl.SHA1)
		if x.c.cfg.AllowPlain && x.overTLS {
			x.mechs = append(x.mechs, sasl.Plain)
		}
		mechs := stream.New(nsSASL, "mechanisms")
		for _, m := range x.mechs {
			mechs.Add(stream.New(nsSASL, "mechanism").AddText(m))
		}
		out := []*stream.Element{mechs, x.authentication()}
		out = append(out, x.c.cfg.Server.PreAuthFeatures()...)
		if len(cb.Data) > 0 {
			el := stream.New(nsCB, "sasl-channel-binding")
			for _, t := range []string{"tls-exporter", "tls-server-end-point", "tls-unique"} {
				if cb.Data[t] != nil {
					el.Add(stream.New(nsCB, "channel-binding", "type", t))
					x.cbTypes = append(x.cbTypes, t)
				}
			}
			out = append(out, el)
		}
		return out
	default:
		out := []*stream.Element{
			stream.New(nsBind, "bind"),
			stream.New(nsSess, "session").Add(stream.New(nsSess, "optional")),
		}
		return append(out, x.c.cfg.Server.StreamFeatures(nil)...)
	}
}

// binding returns the channel-binding data of the TLS connection.
func (x *conn) binding() sasl.Binding {
	b := sasl.Binding{Data: map[string][]byte{}}
	var cs tls.ConnectionState
	switch {
	case x.tlsc != nil:
		cs = x.tlsc.ConnectionState()
	case x.tlsState != nil:
		cs = *x.tlsState
	default:
		return b
	}
	if cs.Version >= tls.VersionTLS13 {
		if ekm, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err == nil {
			b.Data["tls-exporter"] = ekm
		}
	} else if cs.TLSUnique != nil {
		b.Data["tls-unique"] = cs.TLSUnique
	}
	if cert, err := x.c.cfg.Certs.Get(nil); err == nil {
		b.Data["tls-server-end-point"] = tlsconf.EndPoint(&cs, cert)
	}
	return b
}

func (x *conn) handshake() error {
	t := tls.Server(x.raw, x.c.tls)
	if err := t.Handshake(); err != nil {
		x.c.cfg.Log.Debug("tls handshake", "ip", x.ip, "err", err)
		return err
	}
	x.tlsc, x.nc, x.secure, x.overTLS = t, t, true, true
	x.headerSent = false
	x.p = stream.NewParser(x.reader(t), stream.PreAuthLimits)
	return nil
}

// element handles one top-level element; false ends the connection.
func (x *conn) element(el *stream.Element) bool {
	if x.sess != nil {
		return x.stanza(el)
	}
	isStanza := el.Space == stream.NSClient && (el.Local == "message" || el.Local == "presence" || el.Local == "iq")
	switch {
	case !x.secure:
		if el.Space == nsTLS && el.Local == "starttls" {
			x.write([]byte("<proceed xmlns='" + nsTLS + "'/>"))
			x.p.SkipSpace()
			if x.p.Buffered() > 0 {
				// Plaintext sent after <starttls/> would otherwise be read
				// as if it had arrived over TLS (CVE-2011-0411 class).
				return false
			}
			return x.handshake() == nil
		}
		if isStanza {
			x.streamError("not-authorized", "authenticate first")
		} else {
			x.streamError("policy-violation", "STARTTLS is required")
		}
		return false
	case x.user == "":
		if el.Space == nsSASL {
			return x.sasl(el)
		}
		if el.Space == nsSASL2 {
			return x.sasl2(el)
		}
		if el.Space == stream.NSClient && el.Local == "iq" && (el.Get("type") == "get" || el.Get("type") == "set") {
			if x.pre == nil {
				x.pre = &server.PreAuth{IP: x.ip}
			}
			if reply, ok := x.c.cfg.Server.PreAuthIQ(x.pre, el); ok {
				return x.send(reply) == nil
			}
		}
		if isStanza {
			x.streamError("not-authorized", "authenticate first")
		} else {
			x.streamError("policy-violation", "expected SASL")
		}
		return false
	}
	// Authenticated, not bound yet.
	if el.Space == stream.NSClient && el.Local == "iq" && el.Get("type") == "set" {
		if b := el.Child(nsBind, "bind"); b != nil {
			return x.bind(el, b)
		}
	}
	if el.Space == nsSM && el.Local == "resume" {
		return x.resume(el)
	}
	if isStanza {
		x.streamError("not-authorized", "bind a resource first")
	} else {
		x.streamError("unsupported-stanza-type", "")
	}
	return false
}
