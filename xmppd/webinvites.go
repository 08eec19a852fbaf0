package xmppd

// The invites adapter of the web pages (setupui.Invites) and the invite
// module's policy: whether members may invite (config site.members_invite)
// and where an invite's web page is (for XEP-0401's landing-url).

import (
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/hearthchat/hearth/appliance/config"
	setupui "github.com/hearthchat/hearth/setup-ui"
	"github.com/hearthchat/hearth/xmppd/admin"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/webchat"
)

// configureInvites installs the invites module's policy on the server.
func (d *Daemon) configureInvites() {
	invites.Configure(d.Server, invites.Policy{
		MembersMayInvite: func() bool {
			c, err := config.Load(d.opts.State.Config())
			return err == nil && c.Site.MembersInvite
		},
		LandingURL: func(tok string) string {
			if b := d.webBase(); b != "" {
				return b + "/i/" + tok
			}
			return ""
		},
	})
}

// webBase is the address of the box's pages as a member's phone reaches
// them: https://<domain> on the device, the -web address under make run.
func (d *Daemon) webBase() string {
	switch {
	case d.opts.Web == "":
		return ""
	case d.opts.WebTLS != "" && !d.opts.Dev:
		return "https://" + d.Server.Domain
	}
	host, port, err := net.SplitHostPort(d.opts.Web)
	if err != nil {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = d.Server.Domain
	}
	if port == "80" {
		return "http://" + host
	}
	return "http://" + net.JoinHostPort(host, port)
}

type webInvites struct{ d *Daemon }

func (i webInvites) page(inv *invites.Invite) setupui.Invite {
	out := setupui.Invite{
		Token: inv.Token, URI: inv.URI(i.d.Server.Domain), Created: inv.Created, Expires: inv.Expires,
		Inviter: inv.Inviter, Uses: inv.Uses, MaxUses: inv.MaxUses, Role: inv.Role, Note: inv.Note,
	}
	if inv.Kind == invites.KindInvite {
		out.User = inv.User
	}
	if inv.Kind == invites.KindReset {
		// A reset link is a web page, never an app link.
		out.Reset, out.Role = inv.User, ""
		out.URI = i.d.webBase() + "/reset/" + inv.Token
	}
	return out
}

func inviteErr(err error) error {
	switch {
	case errors.Is(err, invites.ErrInvalid):
		return setupui.ErrInvite
	case errors.Is(err, invites.ErrBadOptions):
		return errors.Join(setupui.ErrInviteOptions, err)
	case errors.Is(err, invites.ErrTooMany):
		return errors.Join(setupui.ErrTooManyInvites, err)
	case errors.Is(err, store.ErrExists):
		return setupui.ErrExists
	case errors.Is(err, invites.ErrWrongName):
		return setupui.ErrBadName
	}
	return err
}

func (i webInvites) Create(o setupui.InviteOptions) (setupui.Invite, error) {
	opt := invites.Options{TTL: o.TTL, Uses: o.Uses, Inviter: o.Inviter, Admin: o.Admin, Role: o.Role, Note: o.Note}
	if o.ResetFor != "" {
		opt.Kind, opt.User, opt.Role, opt.Admin = invites.KindReset, o.ResetFor, "", false
		if !i.d.Server.AccountExists(o.ResetFor) {
			return setupui.Invite{}, setupui.ErrBadName
		}
	}
	inv, err := invites.Create(i.d.Store, opt)
	if err != nil {
		return setupui.Invite{}, inviteErr(err)
	}
	return i.page(inv), nil
}

func (i webInvites) List() ([]setupui.Invite, error) {
	l, err := invites.List(i.d.Store)
	out := make([]setupui.Invite, 0, len(l))
	for _, inv := range l {
		out = append(out, i.page(inv))
	}
	return out, err
}

func (i webInvites) Revoke(token string) error { return inviteErr(invites.Revoke(i.d.Store, token)) }

func (i webInvites) Lookup(token string) (setupui.Invite, error) {
	inv, err := invites.Get(i.d.Store, token)
	if err != nil {
		return setupui.Invite{}, inviteErr(err)
	}
	return i.page(inv), nil
}

func (i webInvites) LookupReset(token string) (setupui.Invite, error) {
	inv, err := invites.GetReset(i.d.Store, token)
	if err != nil {
		return setupui.Invite{}, inviteErr(err)
	}
	return i.page(inv), nil
}

func (i webInvites) Redeem(token, user, password string) (string, error) {
	u, err := admin.NormalizeUser(user)
	if err != nil || strings.HasPrefix(u, "_") {
		return "", setupui.ErrBadName // "_" names are the box's own (_health)
	}
	inv, err := invites.Redeem(i.d.Store, token, u, password)
	if err != nil {
		return "", inviteErr(err)
	}
	i.d.opts.Log.Info("account registered with an invite on the web", "user", u, "inviter", inv.Inviter)
	// The same event as in-band registration: the roster module makes
	// member and inviter contacts (pre-approved, both ways).
	invites.Registered(i.d.Server, u, inv)
	return u, nil
}

func (i webInvites) ResetPassword(token, password string) (string, error) {
	u, err := invites.ResetPassword(i.d.Store, token, password)
	return u, inviteErr(err)
}

func (i webInvites) MayInvite(user string) bool { return invites.MayInviteOn(i.d.Server, user) }

// ChatHandoff hands a member who just registered on the invite page into
// /chat/ logged in (webchat.Handoffs: a one-time token in a cookie for
// /chat/, two minutes). No chat without Converse's files in the build or
// without the web server that mounts it (mountChat).
func (i webInvites) ChatHandoff(w http.ResponseWriter, r *http.Request, user, password string) bool {
	if !chatBuilt() || i.d.Web == nil {
		return false
	}
	tok := i.d.ChatHandoffs.Put(user+"@"+i.d.Server.Domain, password)
	i.d.ChatHandoffs.Redirect(w, r, tok)
	return true
}

// chatBuilt is webchat.Built; a test of the fallback replaces it.
var chatBuilt = webchat.Built
