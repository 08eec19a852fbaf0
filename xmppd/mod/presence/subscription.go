package presence

import (
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// outSubscription handles a subscription stanza from a local client
// (RFC 6121 §3.1.2, §3.2.2, §3.3.2, §3.4).
func (p *mod) outSubscription(st *server.Stanza, typ string) {
	contact := st.To.Bare()
	user := st.Origin.User
	if contact.Equal(st.From.Bare()) {
		return
	}
	o, err := p.srv.Contacts().Subscribe(user, contact.String(), typ, true, nil)
	if err != nil {
		p.fail(st, err)
		return
	}
	bare := st.From.Bare()
	if o.Forward {
		// §3.1.2: the server stamps the bare JID and routes to the
		// contact's bare JID.
		el := st.El.Copy()
		el.Set("from", bare.String())
		el.Set("to", contact.String())
		p.srv.Route(el)
	}
	p.presenceTo(user, contact, o)
}

func (p *mod) fail(st *server.Stanza, err error) {
	var se *server.StanzaError
	if !errors.As(err, &se) {
		p.srv.Log.Error("presence: subscription", "from", st.From.String(), "to", st.To.String(), "err", err)
	}
	p.srv.Bounce(st, err)
}

// presenceTo sends the user's current presence (or unavailable) from each
// available resource to contact, as the outcome asks.
func (p *mod) presenceTo(user string, contact jid.JID, o server.SubOutcome) {
	if !o.SendPresence && !o.SendUnavailable {
		return
	}
	for _, s := range p.srv.Router.Sessions(user) {
		pr, avail, _ := s.Presence()
		if !avail {
			continue
		}
		var x *stream.Element
		if o.SendPresence && pr != nil {
			x = pr.Copy()
		} else {
			x = stream.New(stream.NSClient, "presence", "type", "unavailable")
		}
		x.Set("from", s.JID.String())
		x.Set("to", contact.String())
		p.srv.Route(x)
	}
}

// in handles presence addressed to a local account or resource.
func (p *mod) in(st *server.Stanza) bool {
	user := st.To.Localpart()
	typ := st.Type()
	if !p.srv.AccountExists(user) {
		// §3.1.3, §4.3.2: tell the sender there is nobody to subscribe
		// to; everything else is dropped silently (§8.5.1).
		if (typ == "subscribe" || typ == "probe") && st.From.Domainpart() != "" {
			p.srv.Route(stream.New(stream.NSClient, "presence", "type", "unsubscribed",
				"from", st.To.Bare().String(), "to", st.From.Bare().String()))
		}
		return true
	}
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		p.inSubscription(st, typ)
	case "probe":
		p.inProbe(st)
	case "", "unavailable", "error":
		p.deliver(st)
	}
	return true
}

// deliver sends presence to the full JID it names if that is online
// (else it is dropped, §8.5.3.2.1) or to every available resource of the
// account (§8.5.2.1.1).
func (p *mod) deliver(st *server.Stanza) {
	user := st.To.Localpart()
	if res := st.To.Resourcepart(); res != "" {
		if s := p.srv.Router.Session(user, res); s != nil {
			s.Send(st.El)
		}
		return
	}
	for _, s := range p.srv.Router.Sessions(user) {
		if s.Available() {
			s.Send(st.El)
		}
	}
}

// inSubscription applies a contact's subscription stanza to the user's
// record (§3.1.3, §3.1.6, §3.2.3, §3.3.3).
func (p *mod) inSubscription(st *server.Stanza, typ string) {
	from := st.From.Bare()
	user := st.To.Localpart()
	userJID := st.To.Bare()
	if from.Domainpart() == "" || from.Equal(userJID) {
		return
	}
	el := st.El.Copy()
	el.Set("from", from.String())
	el.Set("to", userJID.String())
	var req []byte
	if typ == "subscribe" {
		req = el.Append(nil, "")
	}
	o, err := p.srv.Contacts().Subscribe(user, from.String(), typ, false, req)
	if err != nil {
		// A full roster cannot take another request: refuse it.
		var se *server.StanzaError
		if errors.As(err, &se) && se.Condition == "resource-constraint" && typ == "subscribe" {
			p.srv.Route(stream.New(stream.NSClient, "presence", "type", "unsubscribed",
				"from", userJID.String(), "to", from.String()))
			return
		}
		p.srv.Log.Error("presence: inbound subscription", "user", user, "from", from.String(), "err", err)
		return
	}
	if o.Forward {
		// Requests go to available resources (and are re-delivered at
		// the next login while unanswered); answers to interested ones.
		for _, s := range p.srv.Router.Sessions(user) {
			if s.Available() || typ != "subscribe" && s.Interested() {
				s.Send(el)
			}
		}
	}
	if o.AutoReply {
		p.srv.Route(stream.New(stream.NSClient, "presence", "type", "subscribed",
			"from", userJID.String(), "to", from.String()))
	}
	p.presenceTo(user, from, o)
}

// inProbe answers a probe from another server's user (§4.3.2). Probes
// between local accounts never get here: they are answered from the
// sessions directly.
func (p *mod) inProbe(st *server.Stanza) {
	user := st.To.Localpart()
	userJID := st.To.Bare()
	if st.From.Domainpart() == "" {
		return
	}
	r, err := p.srv.Contacts().Relation(user, st.From.Bare().String())
	if err != nil {
		p.srv.Log.Error("presence: probe", "user", user, "err", err)
		return
	}
	if !r.From {
		p.srv.Route(stream.New(stream.NSClient, "presence", "type", "unsubscribed",
			"from", userJID.String(), "to", st.From.String()))
		return
	}
	any := false
	for _, s := range p.srv.Router.Sessions(user) {
		if pr, avail, _ := s.Presence(); avail && pr != nil {
			any = true
			x := pr.Copy()
			x.Set("from", s.JID.String())
			x.Set("to", st.From.String())
			p.srv.Route(x)
		}
	}
	if !any {
		p.srv.Route(stream.New(stream.NSClient, "presence", "type", "unavailable",
			"from", userJID.String(), "to", st.From.String()))
	}
}
