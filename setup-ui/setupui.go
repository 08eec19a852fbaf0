// Package setupui is Hearth's web pages: the setup wizard that claims a new
// box, the login page, the invite landing pages
// and the admin pages. xmppd's one web server (xmppd/web) mounts the
// handler New returns; the pages reach the rest of the box only through
// the small interfaces in Deps, which xmppd implements (xmppd/webdeps.go).
// Nothing here opens the database.
//
// # Routes
//
// Every route is one line of the table in routes.go, with its access rule:
// public, setupOnly (the setup code was accepted, box not yet claimed),
// member (RequireLogin) or admin (RequireAdmin). Every POST route is
// wrapped in page.Protect (Origin / Sec-Fetch-Site, body limit, CSRF
// token). A test (TestRouteTable) calls every non-public route without a
// session and expects 401/403 or a redirect to a login page, so a route
// added with the wrong rule fails the build.
//
// Until the box is claimed (config.Claimed) only the setup pages and the
// style sheet answer; everything else redirects to /setup.
//
// # Adding a page
//
//  1. Write templates/<name>.html defining "title" and "main" (see
//     setup-code.html). Plain words: no "XMPP", "JID", "MUC", "SRV". No
//     script, no inline style, nothing from other sites (the CSP forbids
//     it anyway); use the classes in internal/page/assets/hearth.css.
//  2. Write the handler as a method of *UI; render with
//     u.tpl.Render(w, r, http.StatusOK, "<name>", data).
//  3. Add its line to routes in routes.go with the access rule. A form
//     posts to a route whose handler is wrapped by the table in
//     page.Protect; put {{template "csrf" .}} inside the <form>.
//  4. The session is page.SessionOf(r): .User, .Admin. After a login or
//     any change of privilege use u.sess.Change (new ID and token).
//
// One file per area of this package (code.go, account.go, reach.go,
// invite.go, login.go; landing.go: the invite pages /i/<token>, the web
// registration, the poster and /reset/<token>; member_invite.go: /invite;
// admin*.go: the admin pages), all sharing the one session table and the Deps. A new
// need of the rest of the box (list members, revoke an invite) is a new
// method on one of the Deps interfaces, implemented in xmppd/webdeps.go;
// never open the database or a socket from here. Fakes of every interface
// are in setupui_test.go (newFixture), with a cookie-keeping client that
// fetches a form's CSRF token (browser.token) and posts it.
//
// Other handlers that are not pages (the web chat, WebSocket, uploads)
// mount on the web server itself (xmppd/web: Server.Handle, AddLink).
package setupui

import (
	"context"
	"embed"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/status"
	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

//go:embed templates/*.html
var templates embed.FS

// Accounts is the account store as the pages need it.
type Accounts interface {
	// Create makes an account with SCRAM verifiers only and returns its
	// normalized name; ErrExists when taken, ErrBadName when the name
	// cannot be an address.
	Create(user, password string, admin bool) (string, error)
	// Check reports whether password is user's, and whether user is an
	// admin.
	Check(user, password string) (ok, admin bool)
	// People counts the accounts people use (not the box's own).
	People() (int, error)
}

// Errors of Accounts.Create.
var (
	ErrExists  = errors.New("that name is taken")
	ErrBadName = errors.New("that name cannot be used")
)

// InviteOptions describe a new invite.
type InviteOptions struct {
	Inviter string
	TTL     time.Duration // 1 hour to 4 weeks; 0: one week
	Uses    int           // 1: one person; more: a group
	Admin   bool          // same as Role "admin"
	Role    string        // "admin", "member" (default) or "limited"
	Note    string
	// ResetFor makes a password-reset link for this account instead of
	// an invite.
	ResetFor string
}

// Invite is an invite (or a password-reset link).
type Invite struct {
	Token   string
	URI     string // the link an app opens (xmpp:…?register;preauth=…)
	Created time.Time
	Expires time.Time
	Inviter string // "" for the box's admin tools
	Uses    int    // how many more may use it
	MaxUses int    // how many it was made for
	Role    string // admin, member, limited
	Note    string
	Reset   string // the account of a password-reset link
	User    string // the name an invite keeps for the new account ("": any)
}

// Invites are invitations and password-reset links (xmppd/mod/invites).
type Invites interface {
	// Create makes one; ErrInviteOptions outside the bounds,
	// ErrTooManyInvites past the creator's cap.
	Create(InviteOptions) (Invite, error)
	// List is every invite and reset link that can still be used.
	List() ([]Invite, error)
	Revoke(token string) error
	// Lookup returns a usable invite; ErrInvite for a token that is
	// unknown, expired, used up, revoked or a reset link.
	Lookup(token string) (Invite, error)
	// Redeem makes the account user with the invite (and the
	// pre-approved subscription with the inviter) and returns its
	// normalized name; ErrInvite, ErrExists or ErrBadName.
	Redeem(token, user, password string) (string, error)
	// LookupReset returns a usable reset link (ErrInvite otherwise).
	LookupReset(token string) (Invite, error)
	// ResetPassword spends a reset link and returns the account.
	ResetPassword(token, password string) (string, error)
	// MayInvite reports whether user may create invites (admins; members
	// when the admin allows it; never limited accounts).
	MayInvite(user string) bool
	// ChatHandoff sends the browser of a member who just made the account
	// user with password into the browser chat (/chat/), logged in, and
	// returns true: a one-time token in a cookie for /chat/ only, never
	// the password in a URL or a page (xmppd/webchat/handoff.go). It
	// writes nothing and returns false when this box has no browser chat.
	ChatHandoff(w http.ResponseWriter, r *http.Request, user, password string) bool
}

// Errors of Invites.
var (
	ErrInvite         = errors.New("this invitation cannot be used")
	ErrInviteOptions  = errors.New("invitation settings out of bounds")
	ErrTooManyInvites = errors.New("too many open invitations")
)

// Config is the appliance config file.
type Config interface {
	Load() (*config.Config, error)
	// Update loads, applies f and saves atomically; f's error aborts.
	Update(f func(*config.Config) error) error
}

// Network is netconf, through its socket.
type Network interface {
	Status(ctx context.Context) (status.Report, error)
	Reload(ctx context.Context) error
}

// Deps are what the pages need from the rest of the box.
type Deps struct {
	Accounts Accounts
	Invites  Invites
	Config   Config
	Network  Network
	// SetupCode returns the box's setup code ("" when it has none).
	SetupCode func() string
	// Fingerprint is the SHA-256 fingerprint of the certificate the box
	// serves (for "home network only": members compare it).
	Fingerprint func() string
	// Domain is the domain the chat server runs with now.
	Domain func() string
	// Admin is what the admin pages need (admin.go); a nil part answers
	// "not available on this box yet".
	Admin Admin
	// Backup makes and restores whole-box backups (admin_backup.go,
	// restore.go); nil: not on this box.
	Backup Backups
	Log    *slog.Logger
}

// UI is the pages' handler.
type UI struct {
	d    Deps
	tpl  *page.Templates
	sess *page.Sessions
	mux  *http.ServeMux
	h    http.Handler

	// codeIP and codeAll limit setup code attempts per source and in
	// total; loginIP limits password attempts per source.
	codeIP, codeAll, loginIP *page.Limiter
	// tokenIP limits invite and reset link lookups per source (landing.go).
	tokenIP *page.Limiter
	// moveLimit bounds moves per member (move.go).
	moveLimit *page.Limiter
	claimMu   sync.Mutex // one claim at a time
}

// New returns the pages' handler.
func New(d Deps) (*UI, error) {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	tpl, err := page.Parse(templates, "templates/*.html")
	if err != nil {
		return nil, err
	}
	u := &UI{
		d: d, tpl: tpl, sess: page.NewSessions(), mux: http.NewServeMux(),
		codeIP:    page.NewLimiter(10, 15*time.Minute),
		codeAll:   page.NewLimiter(30, 15*time.Minute),
		loginIP:   page.NewLimiter(10, 15*time.Minute),
		tokenIP:   page.NewLimiter(60, 15*time.Minute),
		moveLimit: page.NewLimiter(movesPerMember, moveWindow),
	}
	tpl.Log = d.Log
	tpl.Name = u.chatName
	for _, rt := range u.routes() {
		u.mux.Handle(rt.pattern, rt.handler())
	}
	u.h = u.sess.Middleware(u.unclaimedGate(u.mux))
	return u, nil
}

func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.h.ServeHTTP(w, r) }

func (u *UI) chatName() string {
	c, err := u.d.Config.Load()
	if err != nil {
		return ""
	}
	return c.Site.Name
}

func (u *UI) claimed() bool {
	c, err := u.d.Config.Load()
	return err == nil && c.Claimed
}

// unclaimedGate: before the box is claimed, only the setup pages exist.
func (u *UI) unclaimedGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/setup", "/setup/account", "/setup/restore", page.CSSPath:
		default:
			if !u.claimed() {
				if r.Method == http.MethodGet || r.Method == http.MethodHead {
					http.Redirect(w, r, "/setup", http.StatusSeeOther)
					return
				}
				page.Error(w, r, http.StatusForbidden, "This box is not set up yet. Open /setup on the box first.")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
