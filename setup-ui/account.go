package setupui

import (
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// Step 2: the admin's own account. Creating it claims the box.

type accountData struct {
	DisplayName, User string
	Domain            string
	Error             string
	Step              int
}

func (u *UI) accountForm(w http.ResponseWriter, r *http.Request) {
	if u.claimed() {
		http.Redirect(w, r, "/setup/reach", http.StatusSeeOther)
		return
	}
	u.tpl.Render(w, r, http.StatusOK, "setup-account", accountData{Domain: u.d.Domain(), Step: 2})
}

// SuggestUser makes a user name from a display name: the first word,
// lower case, letters and digits only ("Anna Müller" → "anna").
func SuggestUser(display string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(display), " ")
	var b strings.Builder
	for _, c := range strings.ToLower(first) {
		if c < utf8.RuneSelf && (unicode.IsLetter(c) || unicode.IsDigit(c)) {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// MinPassword is the shortest password accepted; no other composition
// rules (NIST SP 800-63B: length, not character classes).
const MinPassword = 8

// password is the field the person filled: the hidden one, or its
// plain-text twin when they ticked "show".
func password(r *http.Request) (string, string) {
	pw, plain := r.PostForm.Get("password"), r.PostForm.Get("password_shown")
	switch {
	case pw != "" && plain != "" && pw != plain:
		return "", "The two password boxes differ (the hidden one and the shown one). Please type the password once more."
	case pw == "":
		pw = plain
	}
	switch {
	case pw == "":
		return "", "Please choose a password."
	case utf8.RuneCountInString(pw) < MinPassword:
		return "", "Please use a password of at least 8 characters; a few words in a row are easy to remember."
	case len(pw) > 1024:
		return "", "That password is too long."
	}
	return pw, ""
}

func (u *UI) accountSubmit(w http.ResponseWriter, r *http.Request) {
	data := accountData{
		DisplayName: strings.TrimSpace(r.PostForm.Get("display")),
		User:        strings.TrimSpace(r.PostForm.Get("user")),
		Domain:      u.d.Domain(), Step: 2,
	}
	if data.User == "" {
		data.User = SuggestUser(data.DisplayName)
	}
	fail := func(code int, msg string) {
		data.Error = msg
		u.tpl.Render(w, r, code, "setup-account", data)
	}
	if data.DisplayName == "" || utf8.RuneCountInString(data.DisplayName) > 60 {
		fail(http.StatusBadRequest, "Please tell us your name (how others will see you), up to 60 letters.")
		return
	}
	if data.User == "" {
		fail(http.StatusBadRequest, "Please choose a user name: small letters and digits, for example anna.")
		return
	}
	pw, msg := password(r)
	if msg != "" {
		fail(http.StatusBadRequest, msg)
		return
	}
	u.claimMu.Lock()
	defer u.claimMu.Unlock()
	if u.claimed() {
		u.tpl.Render(w, r, http.StatusGone, "claimed", nil)
		return
	}
	user, err := u.d.Accounts.Create(data.User, pw, true)
	switch {
	case errors.Is(err, ErrBadName):
		fail(http.StatusBadRequest, "That user name cannot be used. Use small letters and digits, for example anna.")
		return
	case errors.Is(err, ErrExists):
		fail(http.StatusConflict, "That user name is taken. Please choose another.")
		return
	case err != nil:
		u.d.Log.Error("setup: create admin", "err", err)
		fail(http.StatusInternalServerError, "The box could not create the account. Please try again.")
		return
	}
	err = u.d.Config.Update(func(c *config.Config) error {
		c.Claimed = true
		c.Site.Admin = user
		return nil
	})
	if err != nil {
		u.d.Log.Error("setup: claim", "err", err)
		fail(http.StatusInternalServerError, "The account was made, but the box could not save that it is set up. Please try again.")
		return
	}
	u.d.Log.Info("setup: box claimed", "admin", user)
	u.sess.Change(w, r, page.SessionOf(r), func(x *page.Session) {
		x.User, x.Admin, x.Setup = user, true, false
	})
	http.Redirect(w, r, "/setup/reach", http.StatusSeeOther)
}
