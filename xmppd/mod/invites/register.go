package invites

import (
	"errors"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	nsPreauth  = "urn:xmpp:pars:0"
	nsRegister = "jabber:iq:register"
	nsRegFeat  = "http://jabber.org/features/iq-register"
)

type tokenKey struct{}

// Register plugs invite-based registration into the server.
func Register(srv *server.Server) {
	srv.AddPreAuthFeature(stream.New(nsRegFeat, "register"))
	srv.OnAccountDeleted(func(user string) {
		if err := SetRole(srv.Store, user, RoleMember); err != nil {
			srv.Log.Error("invites: forget role", "user", user, "err", err)
		}
	})
	registerCommands(srv)
	// A limited account is local-only: nothing it sends leaves the box.
	// Today every remote stanza bounces anyway (no server-to-server
	// module yet); this hook runs before any that will carry them out.
	srv.Hook(server.StanzaRemote, 1000, func(st *server.Stanza) bool {
		if st.Origin == nil || !strings.EqualFold(st.From.Domainpart(), srv.Domain) || Role(srv.Store, st.From.Localpart()) != RoleLimited {
			return false
		}
		srv.Bounce(st, &server.StanzaError{Type: "cancel", Condition: "not-allowed", Text: "this account chats only with people on this box"})
		return true
	})
	// XEP-0445: the app presents the token before registering.
	srv.HandlePreAuthIQ(nsPreauth, func(pa *server.PreAuth, iq *stream.Element) (*stream.Element, error) {
		p := iq.FirstChild()
		if iq.Get("type") != "set" || p.Local != "preauth" {
			return nil, server.ErrBadRequest
		}
		g, now := guessesOf(srv), time.Now()
		if g.blocked(pa.IP, now) {
			return nil, &server.StanzaError{Type: "wait", Condition: "policy-violation", Text: "too many unknown invitations from this address; try again later"}
		}
		inv, err := Get(srv.Store, p.Get("token"))
		if err != nil {
			g.failed(pa.IP, now)
			return nil, server.ErrItemNotFound
		}
		pa.SetValue(tokenKey{}, inv.Token)
		return nil, nil
	})
	// XEP-0077 over a TLS connection before login, allowed only with a
	// token presented on this connection.
	srv.HandlePreAuthIQ(nsRegister, func(pa *server.PreAuth, iq *stream.Element) (*stream.Element, error) {
		token, _ := pa.Value(tokenKey{}).(string)
		q := iq.FirstChild()
		if token == "" {
			return nil, &server.StanzaError{Type: "cancel", Condition: "not-allowed", Text: "registration needs an invite"}
		}
		if iq.Get("type") == "get" {
			out := stream.New(nsRegister, "query")
			out.Add(stream.New(nsRegister, "instructions").AddText("Choose a user name and a password."))
			if inv, err := Get(srv.Store, token); err == nil && inv.User != "" {
				out.Add(stream.New(nsRegister, "username").AddText(inv.User))
			} else {
				out.Add(stream.New(nsRegister, "username"))
			}
			return out.Add(stream.New(nsRegister, "password")), nil
		}
		if q.Child(nsRegister, "remove") != nil {
			return nil, server.ErrNotAllowed
		}
		name := strings.TrimSpace(q.ChildText(nsRegister, "username"))
		pw := q.ChildText(nsRegister, "password")
		j, err := jid.New(name, srv.Domain, "")
		if err != nil || name == "" || strings.HasPrefix(name, "_") {
			return nil, &server.StanzaError{Type: "modify", Condition: "jid-malformed", Text: "that user name cannot be used"}
		}
		if len(pw) < 8 {
			return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: "the password needs at least 8 characters"}
		}
		inv, err := Redeem(srv.Store, token, j.Localpart(), pw)
		switch {
		case errors.Is(err, store.ErrExists):
			return nil, &server.StanzaError{Type: "cancel", Condition: "conflict", Text: "that user name is taken"}
		case errors.Is(err, ErrInvalid):
			return nil, &server.StanzaError{Type: "cancel", Condition: "not-allowed", Text: "the invite has expired or was used"}
		case errors.Is(err, ErrWrongName):
			return nil, &server.StanzaError{Type: "modify", Condition: "not-acceptable", Text: err.Error()}
		case err != nil:
			return nil, err
		}
		pa.SetValue(tokenKey{}, "")
		srv.Log.Info("account registered with an invite", "user", j.Localpart(), "inviter", inv.Inviter)
		// The roster module pre-subscribes the member and the inviter.
		Registered(srv, j.Localpart(), inv)
		return nil, nil
	})
}

// Registered announces an account made with inv (in-band or from the web
// landing page): the roster module pre-subscribes member and inviter.
func Registered(srv *server.Server, user string, inv *Invite) {
	inviter := inv.Inviter
	if inv.NoRoster {
		inviter = ""
	}
	server.AccountRegistered.Fire(srv, server.Registration{User: user, Inviter: inviter})
}
