package invites

import (
	"errors"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// XEP-0401 §5 ad-hoc command nodes.
const (
	NodeInvite        = "urn:xmpp:invite#invite"
	NodeCreateAccount = "urn:xmpp:invite#create-account"
	nsInvite          = "urn:xmpp:invite"
	nsData            = "jabber:x:data"
)

// Policy is what the box's settings and web server tell the module.
type Policy struct {
	// MembersMayInvite is the admin's setting (config site.members_invite):
	// may members (not only admins) create invites?
	MembersMayInvite func() bool
	// LandingURL is the web landing page of a token ("" when the box
	// serves no pages).
	LandingURL func(token string) string
}

type policyKey struct{}

type policyBox struct {
	mu sync.Mutex
	p  Policy
}

func policyOf(srv *server.Server) Policy {
	b := server.State(srv, policyKey{}, func() *policyBox { return new(policyBox) })
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.p
}

// Configure sets srv's invite policy (xmppd, after the modules are
// registered; the default lets only admins invite and names no page).
func Configure(srv *server.Server, p Policy) {
	b := server.State(srv, policyKey{}, func() *policyBox { return new(policyBox) })
	b.mu.Lock()
	defer b.mu.Unlock()
	b.p = p
}

// MayInviteOn reports whether user may create invites on srv.
func MayInviteOn(srv *server.Server, user string) bool {
	p := policyOf(srv)
	return MayInvite(srv.Store, user, p.MembersMayInvite != nil && p.MembersMayInvite())
}

func registerCommands(srv *server.Server) {
	allowed := func(user string) bool { return MayInviteOn(srv, user) }
	srv.AddCommand(server.Command{Node: NodeInvite, Name: "Invite someone", Allowed: allowed,
		Run: func(user string, _ *stream.Element) (server.CommandReply, error) {
			return created(srv, Options{Inviter: user})
		}})
	srv.AddCommand(server.Command{Node: NodeCreateAccount, Name: "Create an account for someone", Allowed: allowed,
		Run: func(user string, form *stream.Element) (server.CommandReply, error) {
			if form == nil {
				return server.CommandReply{Form: createForm()}, nil
			}
			o := Options{Inviter: user}
			if name := strings.TrimSpace(field(form, "username")); name != "" {
				j, err := jid.New(name, srv.Domain, "")
				if err != nil || strings.HasPrefix(name, "_") {
					return server.CommandReply{}, &server.StanzaError{Type: "modify", Condition: "bad-request", Text: "that user name cannot be used"}
				}
				if srv.AccountExists(j.Localpart()) {
					return server.CommandReply{}, &server.StanzaError{Type: "cancel", Condition: "conflict", Text: "that user name is taken"}
				}
				o.User = j.Localpart()
			}
			switch field(form, "roster-subscription") {
			case "0", "false":
				o.NoRoster = true
			}
			return created(srv, o)
		}})
}

func created(srv *server.Server, o Options) (server.CommandReply, error) {
	inv, err := Create(srv.Store, o)
	switch {
	case errors.Is(err, ErrTooMany):
		return server.CommandReply{}, &server.StanzaError{Type: "wait", Condition: "resource-constraint", Text: ErrTooMany.Error()}
	case errors.Is(err, ErrBadOptions):
		return server.CommandReply{}, &server.StanzaError{Type: "modify", Condition: "bad-request", Text: err.Error()}
	case err != nil:
		return server.CommandReply{}, err
	}
	x := stream.New(nsData, "x", "type", "result")
	x.Add(dataField("FORM_TYPE", "hidden", "", nsInvite))
	x.Add(dataField("uri", "text-single", "Invitation link", inv.URI(srv.Domain)))
	if p := policyOf(srv); p.LandingURL != nil {
		if u := p.LandingURL(inv.Token); u != "" {
			x.Add(dataField("landing-url", "text-single", "Invitation web page", u))
		}
	}
	x.Add(dataField("expire", "text-single", "Valid until", inv.Expires.UTC().Format(time.RFC3339)))
	return server.CommandReply{Form: x, Done: true, Note: "Send this link to the person you invite."}, nil
}

func createForm() *stream.Element {
	x := stream.New(nsData, "x", "type", "form")
	x.Add(stream.New(nsData, "title").AddText("Create an account for someone"))
	x.Add(dataField("FORM_TYPE", "hidden", "", nsInvite))
	x.Add(dataField("username", "text-single", "User name (optional)", ""))
	x.Add(dataField("roster-subscription", "boolean", "Add each other as contacts", "1"))
	return x
}

func dataField(v, typ, label, value string) *stream.Element {
	f := stream.New(nsData, "field", "var", v, "type", typ)
	if label != "" {
		f.Set("label", label)
	}
	if value != "" || typ != "text-single" {
		f.Add(stream.New(nsData, "value").AddText(value))
	}
	return f
}

func field(x *stream.Element, v string) string {
	for _, f := range x.Children() {
		if f.Local == "field" && f.Get("var") == v {
			return f.ChildText(nsData, "value")
		}
	}
	return ""
}
