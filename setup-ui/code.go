package setupui

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/setupcard"
	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// Step 1: the setup code (the only way in) and the chat's name.

type codeData struct {
	Code, ChatName string
	Error          string
	Step           int
}

func (u *UI) codeForm(w http.ResponseWriter, r *http.Request) {
	if u.claimed() {
		u.tpl.Render(w, r, http.StatusGone, "claimed", nil)
		return
	}
	// The code may come in the link printed on the card (?code=…).
	u.tpl.Render(w, r, http.StatusOK, "setup-code", codeData{Code: r.URL.Query().Get("code"), ChatName: u.chatName(), Step: 1})
}

// NormalizeCode makes what a person typed comparable with the stored code
// ("abcd efgh…" and "ABCDEFGH…" both become "ABCD-EFGH-…"); the rule lives
// with the code itself in appliance/setupcard.
func NormalizeCode(s string) string { return setupcard.Normalize(s) }

func (u *UI) codeSubmit(w http.ResponseWriter, r *http.Request) {
	if u.claimed() {
		u.tpl.Render(w, r, http.StatusGone, "claimed", nil)
		return
	}
	ip := page.ClientAddr(r)
	// Tor hands connections over from loopback: an onion visitor would
	// look local, so the onion name is refused by name.
	if !page.Private(ip) || strings.HasSuffix(strings.TrimSuffix(hostOnly(r.Host), "."), ".onion") {
		page.Error(w, r, http.StatusForbidden, "A box can only be set up from the home network it is plugged into. Connect this phone to the same Wi-Fi as the box and try again.")
		return
	}
	// Per source and overall: from many addresses at once, guessing the
	// code stays as slow as from one.
	if !u.codeIP.Allow(page.LimitKey(ip)) || !u.codeAll.Allow("") {
		page.Error(w, r, http.StatusTooManyRequests, "The setup code was tried too many times. Wait a quarter of an hour, then type it again carefully.")
		return
	}
	data := codeData{Code: r.PostForm.Get("code"), ChatName: strings.TrimSpace(r.PostForm.Get("name")), Step: 1}
	want := ""
	if u.d.SetupCode != nil {
		want = NormalizeCode(u.d.SetupCode())
	}
	got := NormalizeCode(data.Code)
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		data.Error = "That setup code is not right. It is on the card in the file hearth-setup.txt (16 letters and digits, like ABCD-EFGH-JKMN-PQRS)."
		u.tpl.Render(w, r, http.StatusForbidden, "setup-code", data)
		return
	}
	if msg := checkName(data.ChatName); msg != "" {
		data.Error = msg
		u.tpl.Render(w, r, http.StatusBadRequest, "setup-code", data)
		return
	}
	err := u.d.Config.Update(func(c *config.Config) error {
		c.Site.Name = data.ChatName
		return nil
	})
	if err != nil {
		u.d.Log.Error("setup: save name", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not save the name. Please try again.")
		return
	}
	u.sess.Change(w, r, page.SessionOf(r), func(x *page.Session) { x.Setup = true })
	http.Redirect(w, r, "/setup/account", http.StatusSeeOther)
}

func checkName(s string) string {
	switch {
	case s == "":
		return "Please give your chat a name, for example the name of your club or family."
	case utf8.RuneCountInString(s) > 60:
		return "That name is long; please keep it under 60 letters."
	case strings.ContainsFunc(s, unicode.IsControl):
		return "The name has characters in it that cannot be shown."
	}
	return ""
}

// NewCode draws a setup code like "ABCD-EFGH-JKMN-PQRS" from crypto/rand
// (appliance/setupcard, shared with cmd/firstboot).
func NewCode() (string, error) { return setupcard.New() }

// LoadOrCreateCode returns the setup code in path (put there by the image
// build), making and saving a fresh one when there is none: a box from a
// published image carries no code, so none is shared between boxes.
// cmd/firstboot may make it at the same moment (and writes it onto the
// card); setupcard.LoadOrCreate makes both end with the same code.
func LoadOrCreateCode(path string) (code string, created bool, err error) {
	return setupcard.LoadOrCreate(path)
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.ToLower(h)
	}
	return strings.ToLower(hostport)
}
