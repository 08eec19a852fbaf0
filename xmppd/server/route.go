package server

import (
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/session"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// FromClient routes a stanza a bound local session sent. The transport has
// already checked that it is a message, presence or iq in the content
// namespace. It runs on the session's reader goroutine, so a session's
// stanzas are handled in order and a handler's storage write is durable
// before the next stanza of that session is read — except a write made
// with Commit (durable.go: the message archive), which completes in the
// background: acknowledgements stop short of it and the session's next iq
// waits for it.
func (s *Server) FromClient(sess *session.Session, el *stream.Element) {
	st := &Stanza{El: el, From: sess.JID, Origin: sess}
	el.Set("from", sess.JID.String())
	if to := el.Get("to"); to != "" {
		j, err := jid.Parse(to)
		if err != nil {
			s.bounce(st, ErrJIDMalformed)
			return
		}
		st.To = j
		if j.String() != to {
			el.Set("to", j.String())
		}
	}
	if el.Local == "iq" {
		// Its answer promises that what the session sent before is
		// stored, and a query must see it (durable.go).
		if !s.WaitCommits(sess, commitWait) {
			s.Log.Error("storage commit outstanding too long; answering an iq anyway", "session", sess.JID.String())
		}
	}
	s.safely(sess, func() { s.dispatch(st) })
}

// Route delivers a stanza the server itself generated (or received from
// another server) to its local recipient, by the same rules.
func (s *Server) Route(el *stream.Element) {
	st := &Stanza{El: el}
	if f, err := jid.Parse(el.Get("from")); err == nil {
		st.From = f
	}
	if t, err := jid.Parse(el.Get("to")); err == nil {
		st.To = t
	} else {
		return
	}
	s.safely(nil, func() { s.dispatch(st) })
}

// RouteParsed is Route for a stanza whose addresses the caller has
// parsed already (they must be el's from and to): a room sending one
// occupant's presence to each of the others parses its from once, and a
// newcomer's address once for the presences it is sent, instead of both
// per stanza (jid.Parse was a third of the garbage of a join burst,
// issue 12).
func (s *Server) RouteParsed(el *stream.Element, from, to jid.JID) {
	st := &Stanza{El: el, From: from, To: to}
	s.safely(nil, func() { s.dispatch(st) })
}

// RouteReport is Route for a stanza the server sends on its own behalf
// (an announcement from the domain) whose refusal the caller must learn:
// Route would send the bounce back to the domain, where nothing reads it,
// so the message would be lost without anyone knowing. It returns the
// error the stanza bounced with, nil once it was delivered or stored.
func (s *Server) RouteReport(el *stream.Element) error {
	var bounced error
	st := &Stanza{El: el, refused: func(err error) { bounced = err }}
	if f, err := jid.Parse(el.Get("from")); err == nil {
		st.From = f
	}
	t, err := jid.Parse(el.Get("to"))
	if err != nil {
		return ErrJIDMalformed
	}
	st.To = t
	if !s.safely(nil, func() { s.dispatch(st) }) {
		return ErrInternal
	}
	return bounced
}

func (s *Server) dispatch(st *Stanza) {
	switch st.El.Local {
	case "message":
		s.message(st)
		st.releaseSerialized()
	case "presence":
		s.presence(st)
	case "iq":
		s.iqStanza(st)
	}
}

func (s *Server) remote(st *Stanza) bool {
	if st.To.Domainpart() == "" || s.IsLocal(st.To) {
		return false
	}
	if s.toService(st) { // a hosted subdomain (services.go)
		return true
	}
	if !s.Fire(StanzaRemote, st) {
		s.bounce(st, ErrRemoteNotFound)
	}
	return true
}

func (s *Server) message(st *Stanza) {
	if st.Origin != nil {
		if st.To.Domainpart() == "" {
			// RFC 6120 §10.3.1: no 'to' means the sender's bare JID.
			st.To = st.From.Bare()
			st.El.Set("to", st.To.String())
		}
		if s.Fire(MessageOut, st) {
			return
		}
	}
	if s.remote(st) {
		return
	}
	if st.To.Localpart() == "" {
		// To the domain itself: nothing handles messages here yet.
		if st.Type() != "error" {
			s.bounce(st, ErrServiceUnavailable)
		}
		return
	}
	user := st.To.Localpart()
	if res := st.To.Resourcepart(); res != "" {
		if s.Router.HasResource(user, res) && (s.Fire(MessageFull, st) || s.DeliverFull(st)) {
			return
		}
		// RFC 6121 §8.5.3.2.1: no such resource — or it could not take
		// the message (closing, or backlogged): the same rules, so that
		// it is not lost.
		switch st.Type() {
		case "groupchat":
			s.bounce(st, ErrServiceUnavailable)
			return
		case "error":
			return
		}
	}
	if !s.Fire(MessageBare, st) {
		s.DeliverBare(st)
	}
}

// DeliverFull sends st to the session it names, if it is online.
func (s *Server) DeliverFull(st *Stanza) bool {
	sess := s.Router.Session(st.To.Localpart(), st.To.Resourcepart())
	if sess == nil {
		return false
	}
	return st.sendTo(sess)
}

// DeliverBare applies RFC 6121 §8.5.2 to a message for an account: to the
// available resources with the highest non-negative priority, else to
// offline storage, else an error. A resource that refuses it (closing,
// queue full, backlogged) does not count: the next-best resources are
// tried, then storage (issue 9: every available resource closing used to
// make the message vanish).
func (s *Server) DeliverBare(st *Stanza) {
	user := st.To.Localpart()
	exists := s.accountExists(user)
	typ := st.Type()
	if !exists {
		if typ != "error" && typ != "groupchat" && typ != "headline" {
			s.bounce(st, ErrServiceUnavailable)
		}
		return
	}
	all, _ := s.Router.Available(user)
	switch typ {
	case "groupchat":
		s.bounce(st, ErrServiceUnavailable)
		return
	case "headline":
		// Every resource with a non-negative priority; none that can take
		// it means none online, which RFC 6121 answers with silence.
		for _, x := range all {
			if x.Priority() >= 0 {
				st.sendTo(x)
			}
		}
		return
	case "error":
		sendTop(all, st)
		return
	}
	if sendTop(all, st) {
		return
	}
	if !s.Fire(MessageOffline, st) {
		s.bounce(st, ErrServiceUnavailable)
	}
}

// sendTop sends st to the available sessions of highest non-negative
// priority; if none of them takes it, to those of the next priority down,
// and so on. It reports whether any session took it.
func sendTop(all []*session.Session, st *Stanza) bool {
	below := int(^uint(0) >> 1) // priorities already tried are >= below
	for {
		best := -1
		for _, x := range all {
			if p := x.Priority(); p >= 0 && p < below && p > best {
				best = p
			}
		}
		if best < 0 {
			return false
		}
		ok := false
		for _, x := range all {
			if x.Priority() == best && st.sendTo(x) {
				ok = true
			}
		}
		if ok {
			return true
		}
		below = best
	}
}

func (s *Server) accountExists(user string) bool {
	if len(s.Router.Sessions(user)) > 0 {
		return true
	}
	_, err := s.Store.Account(user)
	return err == nil
}

// AccountExists reports whether user has an account.
func (s *Server) AccountExists(user string) bool { return s.accountExists(user) }

func (s *Server) presence(st *Stanza) {
	if st.Origin != nil {
		if s.Fire(PresenceOut, st) {
			return
		}
		if st.To.Domainpart() == "" {
			return // broadcast: only the presence module knows the audience
		}
	}
	if s.remote(st) {
		return
	}
	if st.To.Localpart() == "" {
		return
	}
	if s.Fire(PresenceIn, st) {
		return
	}
	// No presence module: directed presence to an online resource.
	if st.To.Resourcepart() != "" {
		s.DeliverFull(st)
	}
}

func (s *Server) iqStanza(st *Stanza) {
	typ := st.Type()
	if st.Origin != nil && st.To.Domainpart() == "" {
		st.To = st.From.Bare()
	}
	if s.Fire(IQFilter, st) { // iqhook.go
		return
	}
	switch typ {
	case "get", "set":
	case "result", "error":
		if st.To.Resourcepart() != "" && s.IsLocal(st.To) {
			s.DeliverFull(st)
		} else if !s.IsLocal(st.To) {
			s.remote(st)
		} else {
			s.Fire(IQResponse, st) // answers to the server's own requests (pubsub.go)
		}
		// Other answers to the server's own requests (roster pushes,
		// pings) need no action.
		return
	default:
		s.bounce(st, ErrBadRequest)
		return
	}
	if st.El.Get("id") == "" {
		s.bounce(st, ErrBadRequest)
		return
	}
	if s.remote(st) {
		return
	}
	payload := st.El.FirstChild()
	if payload == nil || len(st.El.Children()) != 1 {
		s.bounce(st, ErrBadRequest)
		return
	}
	if st.To.Resourcepart() != "" {
		if !s.DeliverFull(st) {
			s.bounce(st, ErrServiceUnavailable)
		}
		return
	}
	target := ToServer
	if st.To.Localpart() != "" {
		target = ToAccount
		if !s.accountExists(st.To.Localpart()) {
			s.bounce(st, ErrServiceUnavailable)
			return
		}
	}
	s.mu.RLock()
	h := s.iq[iqKey{target, typ, payload.Space, payload.Local}]
	s.mu.RUnlock()
	if h == nil {
		s.bounce(st, ErrServiceUnavailable)
		return
	}
	res, err := h(st)
	if err != nil {
		if !errors.As(err, new(*StanzaError)) {
			s.Log.Error("iq handler", "ns", payload.Space, "err", err)
		}
		s.bounce(st, err)
		return
	}
	reply := stream.New(stream.NSClient, "iq", "type", "result", "id", st.El.Get("id"))
	reply.Set("to", st.From.String())
	if st.El.Has("to") {
		reply.Set("from", st.El.Get("to"))
	}
	reply.Add(res)
	s.reply(st, reply)
}

// Reply sends el back to where st came from.
func (s *Server) reply(st *Stanza, el *stream.Element) {
	if st.Origin != nil {
		st.Origin.Send(el)
		return
	}
	s.Route(el)
}

// Bounce answers st with a stanza error, unless st is itself an error (no
// error loops).
func (s *Server) Bounce(st *Stanza, err error) { s.bounce(st, err) }

func (s *Server) bounce(st *Stanza, err error) {
	if st.Type() == "error" {
		return
	}
	if st.refused != nil {
		st.refused(err)
		return
	}
	r := ErrorReply(st.El, err)
	if st.Origin != nil {
		r.Set("to", st.Origin.JID.String())
		st.Origin.Send(r)
		return
	}
	if st.From.Domainpart() != "" {
		s.Route(r)
	}
}

// SendTo delivers a server-generated stanza to every session of user
// (roster pushes and the like go only to interested sessions: filter picks).
func (s *Server) SendTo(user string, el *stream.Element, filter func(*session.Session) bool) {
	for _, x := range s.Router.Sessions(user) {
		if filter == nil || filter(x) {
			c := el
			if el.Get("to") == "" {
				c = el.Copy()
				c.Set("to", x.JID.String())
			}
			x.Send(c)
		}
	}
}
