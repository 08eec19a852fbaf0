package setupui

// The invite landing pages: /i/<token> (who invited you, how to join on
// this device, every other way one tap away), the web registration form
// for people without a smartphone, the printable poster of a group invite,
// and the password-reset page (/reset/<token>).

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// App store addresses (the apps the landing page offers).
const (
	conversationsFDroid = "https://f-droid.org/packages/eu.siacs.conversations/"
	conversationsPlay   = "https://play.google.com/store/apps/details?id=eu.siacs.conversations"
	monalStore          = "https://apps.apple.com/app/monal-free-xmpp-chat/id317711500"
	siskinStore         = "https://apps.apple.com/app/siskin-im/id1153516838"
	dinoSite            = "https://dino.im/#download"
	gajimSite           = "https://gajim.org/download/"
)

type landingData struct {
	Invite   Invite
	Inviter  string
	ChatName string
	PageURL  string // this page, for the QR code and the poster
	PlayURL  string // Google Play with the invite passed through
	// Order is the platforms' order, the visitor's own first (from the
	// User-Agent; every platform stays on the page).
	Order []string
	QR    template.HTML
	// AppURI is Invite.URI for href: html/template replaces an xmpp:
	// URL with "#ZgotmplZ" (found by TestLandingPage), so the link the
	// box built itself is marked safe (appURI).
	AppURI template.URL
	// App stores and sites.
	FDroid, Monal, Siskin, Dino, Gajim string
	// Form (join page)
	User, Error, Domain string
	// Moving: bring contacts from an old address after joining (move.go);
	// Move: this box can.
	Moving, Move bool
	// BringData: the form offers the optional file of the member's
	// account from another server (account_data.go); DataLimit is its
	// size limit in MB.
	BringData bool
	DataLimit int64
}

// platformOrder puts the visitor's platform first: it only reorders, a
// wrong guess (a tablet, a changed User-Agent) costs a scroll, not a way in.
func platformOrder(ua string) []string {
	switch {
	case strings.Contains(ua, "Android"):
		return []string{"android", "iphone", "desktop"}
	case strings.Contains(ua, "iPhone"), strings.Contains(ua, "iPad"), strings.Contains(ua, "iPod"):
		return []string{"iphone", "android", "desktop"}
	}
	return []string{"desktop", "android", "iphone"}
}

// pageURL is the address the visitor used for this page (the web server
// already refused foreign Host headers).
func pageURL(r *http.Request, path string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + path
}

// invite looks the token up, limited per source address: tokens are
// unguessable (128 bits), the limit keeps anyone from trying anyway.
// It writes the page and returns false when the visitor gets no invite.
func (u *UI) invite(w http.ResponseWriter, r *http.Request, reset bool) (Invite, bool) {
	if !u.tokenIP.Allow(page.LimitKey(page.ClientAddr(r))) {
		page.Error(w, r, http.StatusTooManyRequests, "Too many invitation links were opened from here. Wait a quarter of an hour and open yours again.")
		return Invite{}, false
	}
	tok := r.PathValue("token")
	var inv Invite
	var err error
	if len(tok) > 64 {
		err = ErrInvite
	} else if reset {
		inv, err = u.d.Invites.LookupReset(tok)
	} else {
		inv, err = u.d.Invites.Lookup(tok)
	}
	if err != nil {
		if !errors.Is(err, ErrInvite) {
			u.d.Log.Error("invite lookup", "err", err)
		}
		u.gone(w, r, reset)
		return Invite{}, false
	}
	return inv, true
}

// gone is the friendly page for an expired, used or revoked link (404: a
// link that leads nowhere any more).
func (u *UI) gone(w http.ResponseWriter, r *http.Request, reset bool) {
	u.tpl.Render(w, r, http.StatusNotFound, "invite-gone", struct {
		Reset    bool
		ChatName string
	}{reset, u.chatName()})
}

func (u *UI) landingData(r *http.Request, inv Invite) landingData {
	d := landingData{
		Invite: inv, Inviter: inv.Inviter, ChatName: u.chatName(), Domain: u.d.Domain(), Move: u.d.Admin.Move != nil,
		BringData: u.d.Admin.JoinWithData != nil, DataLimit: maxJoinData >> 20,
		PageURL: pageURL(r, "/i/"+url.PathEscape(inv.Token)),
		Order:   platformOrder(r.UserAgent()),
		FDroid:  conversationsFDroid, Monal: monalStore, Siskin: siskinStore, Dino: dinoSite, Gajim: gajimSite,
	}
	if d.ChatName == "" {
		d.ChatName = "our chat"
	}
	d.AppURI = appURI(inv.URI)
	// Play hands the referrer to the app after installing: Conversations
	// then opens the invite by itself.
	d.PlayURL = conversationsPlay + "&referrer=" + url.QueryEscape(inv.URI)
	return d
}

func (u *UI) landing(w http.ResponseWriter, r *http.Request) {
	inv, ok := u.invite(w, r, false)
	if !ok {
		return
	}
	d := u.landingData(r, inv)
	var err error
	if d.QR, err = QRSVG(d.PageURL, "QR code of this page, to open it on your phone"); err != nil {
		u.d.Log.Error("invite QR", "err", err)
	}
	// XEP-0401: an app that fetches the page finds the invite itself.
	w.Header().Set("Link", "<"+inv.URI+">; rel=\"alternate\"")
	u.tpl.Render(w, r, http.StatusOK, "invite-landing", d)
}

func (u *UI) poster(w http.ResponseWriter, r *http.Request) {
	inv, ok := u.invite(w, r, false)
	if !ok {
		return
	}
	d := u.landingData(r, inv)
	var err error
	if d.QR, err = QRSVG(d.PageURL, "QR code of the invitation: scan it with your phone's camera"); err != nil {
		u.d.Log.Error("invite poster QR", "err", err)
	}
	u.tpl.Render(w, r, http.StatusOK, "invite-poster", d)
}

func (u *UI) joinForm(w http.ResponseWriter, r *http.Request) {
	inv, ok := u.invite(w, r, false)
	if !ok {
		return
	}
	d := u.landingData(r, inv)
	d.User = inv.User
	u.tpl.Render(w, r, http.StatusOK, "invite-join", d)
}

func (u *UI) joinSubmit(w http.ResponseWriter, r *http.Request) {
	inv, ok := u.invite(w, r, false)
	if !ok {
		return
	}
	d := u.landingData(r, inv)
	d.User = strings.TrimSpace(r.PostForm.Get("user"))
	d.Moving = r.PostForm.Get("moving") == "on"
	if inv.User != "" {
		d.User = inv.User // the invite keeps this name (the form shows it fixed)
	}
	fail := func(code int, msg string) {
		d.Error = msg
		u.tpl.Render(w, r, code, "invite-join", d)
	}
	if d.User == "" || len(d.User) > 64 {
		fail(http.StatusBadRequest, "Please choose a user name: small letters and digits, for example anna.")
		return
	}
	pw, msg := password(r)
	if msg != "" {
		fail(http.StatusBadRequest, msg)
		return
	}
	user, err := u.redeem(r, inv.Token, d.User, pw) // account_data.go: with the optional file
	importMsg, badFile := joinImportMessage(err)
	switch {
	case badFile:
		fail(http.StatusUnprocessableEntity, importMsg)
		return
	case errors.Is(err, ErrInvite):
		u.gone(w, r, false)
		return
	case errors.Is(err, ErrBadName):
		fail(http.StatusBadRequest, "That user name cannot be used. Use small letters and digits, for example anna.")
		return
	case errors.Is(err, ErrExists):
		fail(http.StatusConflict, "That user name is taken. Please choose another.")
		return
	case err != nil:
		u.d.Log.Error("invite: web registration", "err", err)
		fail(http.StatusInternalServerError, "The box could not create the account. Please try again.")
		return
	}
	u.d.Log.Info("account registered on the invite page", "user", user, "inviter", inv.Inviter)
	// The new member is logged in here (the box's pages) …
	u.sess.Change(w, r, page.SessionOf(r), func(x *page.Session) {
		x.User, x.Admin, x.Setup = user, inv.Role == "admin", false
	})
	// A member moving from another address brings their contacts first
	// (move.go), then goes on to the chat from there.
	if r.PostForm.Get("moving") == "on" && u.d.Admin.Move != nil {
		http.Redirect(w, r, "/move?welcome=1", http.StatusSeeOther)
		return
	}
	// … and, without a smartphone, goes straight into the browser chat,
	// logged in there too (issue 10). A build without the chat keeps the
	// "account exists" page below.
	if u.d.Invites.ChatHandoff(w, r, user, pw) {
		return
	}
	u.tpl.Render(w, r, http.StatusCreated, "invite-welcome", struct {
		User, Domain, ChatName, Inviter string
		Order                           []string
	}{user, u.d.Domain(), d.ChatName, inv.Inviter, platformOrder(r.UserAgent())})
}

type resetData struct {
	User, Error string
	Expires     time.Time
	Done        bool
}

func (u *UI) resetForm(w http.ResponseWriter, r *http.Request) {
	inv, ok := u.invite(w, r, true)
	if !ok {
		return
	}
	u.tpl.Render(w, r, http.StatusOK, "invite-reset", resetData{User: inv.Reset, Expires: inv.Expires})
}

func (u *UI) resetSubmit(w http.ResponseWriter, r *http.Request) {
	inv, ok := u.invite(w, r, true)
	if !ok {
		return
	}
	d := resetData{User: inv.Reset, Expires: inv.Expires}
	pw, msg := password(r)
	if msg != "" {
		d.Error = msg
		u.tpl.Render(w, r, http.StatusBadRequest, "invite-reset", d)
		return
	}
	user, err := u.d.Invites.ResetPassword(inv.Token, pw)
	switch {
	case errors.Is(err, ErrInvite):
		u.gone(w, r, true)
		return
	case err != nil:
		u.d.Log.Error("password reset", "err", err)
		d.Error = "The box could not save the new password. Please ask for a new link."
		u.tpl.Render(w, r, http.StatusInternalServerError, "invite-reset", d)
		return
	}
	u.d.Log.Info("password reset with a link", "user", user)
	d.Done, d.User = true, user
	u.tpl.Render(w, r, http.StatusOK, "invite-reset", d)
}

// appURI marks the box's own invite link (xmpp:domain?register;preauth=…)
// safe for an href; anything else stays a string html/template filters.
func appURI(uri string) template.URL {
	if !strings.HasPrefix(uri, "xmpp:") || strings.ContainsAny(uri, "\"'<> ") {
		return ""
	}
	return template.URL(uri)
}
