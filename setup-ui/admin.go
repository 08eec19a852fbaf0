package setupui

// The admin pages: members, circles, announcements, health and updates
// (invites have their own page). Each area is one file (admin_*.go) and
// one template (templates/admin-*.html); what they need from the rest of
// the box is the Admin interfaces below, implemented by xmppd
// (xmppd/webdeps.go, xmppd/members.go). Every route is admin-only
// (routes.go) and every form is a plain POST with the CSRF token: no page
// needs JavaScript.

import (
	"context"
	"errors"
	"github.com/hearthchat/hearth/appliance/diskuse"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// Role is what a member may do: admin, member, or limited (chats only with
// people on this box, cannot invite).
type Role string

const (
	RoleAdmin   Role = "admin"
	RoleMember  Role = "member"
	RoleLimited Role = "limited"
)

// Member is one account as the members page shows it.
type Member struct {
	User    string
	Role    Role
	Created time.Time
	// Online: a device of the member is connected now. LastSeen is when
	// the member's last device went away (zero: never, or not known).
	Online   bool
	LastSeen time.Time
	// Removing: the account is disabled and will be deleted for good
	// around DeleteAt unless the removal is undone.
	Removing bool
	DeleteAt time.Time
}

// Members is the account list as the admin pages change it.
type Members interface {
	List() ([]Member, error)
	SetRole(user string, r Role) error
	// Remove disables user at once (logins refused, connected devices
	// closed) and deletes the account for good after the grace period
	// unless Undo is called first.
	Remove(user string) error
	Undo(user string) error
}

// ErrNoMember is returned for a user that does not exist.
var ErrNoMember = errors.New("no such member")

// Circle is a named group of members who see each other in their contact
// lists.
type Circle struct {
	Name    string
	Members []string
}

// Circles are the admin's groups of members.
type Circles interface {
	List() ([]Circle, error)
	Create(name string) error
	Delete(name string) error
	// Add puts user in the circle: the member and every other member of
	// the circle become each other's contacts at once.
	Add(circle, user string) error
	// Leave takes user out of the circle (contacts stay: members remove
	// them in their app if they wish).
	Leave(circle, user string) error
}

// AnnounceResult says what became of an announcement.
type AnnounceResult struct {
	Delivered, Stored int // received now / kept for when they come back
	// Failed are members the message could not reach (their storage is
	// full).
	Failed []string
}

// Health is the box's state for the health page.
type Health struct {
	// The file system of the box's storage (the state directory) and the
	// size of the chat's database file in it.
	StorageTotal, StorageFree uint64
	Database                  int64
	// MemTotal and MemAvailable are the box's memory; MemChat what the
	// chat service uses.
	MemTotal, MemAvailable, MemChat uint64
	BoxUp, ChatUp                   time.Duration // since the box started / the chat service
	Devices                         int           // connected devices (sessions)
	// CertExpires is when the certificate the box serves expires;
	// CertPublic whether a certificate authority issued it.
	CertExpires time.Time
	CertPublic  bool
	Problems    []string // parts that could not be read
	// Disk is the storage history's forecast and bytes written per day
	// (appliance/diskuse).
	Disk diskuse.Report
	// Backup is the nightly backup's last outcome (appliance/backup's
	// status/backup.json), so the admin sees on this page whether one ran.
	Backup Nightly
}

// UpdateStatus is the update agent's report.
type UpdateStatus struct {
	// Known: the agent's status could be read at all.
	Known bool
	// FeedURL is where the box looks for updates ("" none: the box never
	// updates itself).
	FeedURL   string
	Running   string // version running now
	State     string // idle, checking, downloading, installing, trial, error
	Message   string
	LastCheck time.Time
	Offered   int    // release offered by the feed, 0 none
	Result    string // outcome of the last install
}

// Device is one of a member's apps, as it named itself when it logged in
// (SASL2 user-agent, xmppd/store/fast.go).
type Device struct {
	ID       string
	Software string // e.g. "Conversations" ("" if the app did not say)
	Device   string // e.g. "Pixel 7"
	Created  time.Time
	LastUsed time.Time
	// TokenExpiry: until when the app can log in with its saved login
	// key (FAST token) without the password; zero: it has none.
	TokenExpiry time.Time
}

// Devices are a member's apps.
type Devices interface {
	// List is user's devices, most recently used first.
	List(user string) ([]Device, error)
	// SignOutAll ends every login key of user's apps and closes their
	// connections (also those waiting to resume); it returns how many
	// connections it closed. ErrNoMember for an unknown user.
	SignOutAll(user string) (int, error)
}

// Admin is what the admin pages need besides the setup pages' Deps.
type Admin struct {
	Members Members
	Circles Circles
	Devices Devices
	// Announce sends text from the chat itself to every member.
	Announce func(text string) (AnnounceResult, error)
	Health   func(ctx context.Context) Health
	// Updates reads the update agent's status; CheckNow asks it to look
	// for an update at once.
	Updates  func(ctx context.Context) UpdateStatus
	CheckNow func(ctx context.Context) error
	// Federation makes the running chat server take the config's
	// federation section (admin_federation.go); now is false when the
	// change waits for its next start.
	Federation func() (now bool, err error)
	// Retention makes the running chat server take the config's archive
	// section: how long messages and shared files are kept.
	Retention func() error
	// Move brings user's contacts from their old address (move.go); its
	// errors are ErrMoveLogin, ErrMoveUnreachable, ErrMoveAddress or
	// anything else for "try again later".
	Move func(ctx context.Context, user, old, password string) (MoveResult, error)
	// Export writes the accounts users (every member's when nil) as one
	// XEP-0227 file to w, from the running server (account_data.go).
	Export func(users []string, w io.Writer) error
	// Import reads an XEP-0227 file into new accounts on the running
	// server, all or nothing: a name that exists here, or anything wrong
	// with the file, is an *ImportError.
	Import func(r io.Reader) (ImportResult, error)
	// JoinWithData is Invites.Redeem with the member's file from another
	// server: the account is made from the file's data under the chosen
	// name and password, all or nothing with the registration (errors as
	// Redeem's, and *ImportError for the file).
	JoinWithData func(token, user, password string, data io.Reader) (string, ImportResult, error)
}

// adminNav is the admin pages' menu (rendered from Go: every page is its
// own template set, so a shared block would be copied into each file).
func adminNav(current string) template.HTML {
	var b strings.Builder
	b.WriteString(`<nav class="admin" aria-label="Admin pages"><ul>`)
	for _, l := range []struct{ path, name string }{
		{"/admin/members", "Members"}, {"/admin/invites", "Invitations"}, {"/admin/circles", "Circles"},
		{"/admin/announce", "Announcement"}, {"/admin/health", "Health and updates"},
		{"/admin/backup", "Backup"}, {"/admin/data", "Members' data"},
		{"/admin/federation", "Other servers"},
	} {
		if l.path == current {
			b.WriteString(`<li><a href="` + l.path + `" aria-current="page">` + l.name + `</a></li>`)
		} else {
			b.WriteString(`<li><a href="` + l.path + `">` + l.name + `</a></li>`)
		}
	}
	b.WriteString(`</ul></nav>`)
	return template.HTML(b.String())
}

// adminUnavailable answers for an admin area the box did not wire up.
func adminUnavailable(w http.ResponseWriter, r *http.Request) {
	page.Error(w, r, http.StatusServiceUnavailable, "This part of the admin pages is not available on this box yet.")
}

// done redirects back to a page with a short message for it (?done=…:
// a fixed key, never text from the request, so the page cannot be made to
// say something else).
func back(w http.ResponseWriter, r *http.Request, path, done string) {
	http.Redirect(w, r, path+"?done="+done, http.StatusSeeOther)
}

// ago says how long ago t was, in plain words.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 2*time.Minute:
		return "just now"
	case d < 2*time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " minutes ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " hours ago"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + " days ago"
	}
}

// self is the logged-in admin's name.
func self(r *http.Request) string { return page.SessionOf(r).User }
