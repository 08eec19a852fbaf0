package page

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// MaxForm is the largest form body a page accepts (Protect): the setup
// and admin forms are a few hundred bytes.
const MaxForm = 16 << 10

// Protect guards a state-changing handler: only POST; a browser's Origin
// and Sec-Fetch-Site must say the form came from this site; the body is
// at most MaxForm and must parse; the form's csrf field must match the
// session's token. Anything else gets the error page and the handler does
// not run, so nothing changes.
func Protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			Error(w, r, http.StatusMethodNotAllowed, "This address only takes a form.")
			return
		}
		if !SameOrigin(r) {
			Error(w, r, http.StatusForbidden, "This form was sent from another web site, so the box ignored it. Open the page on the box itself and try again.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxForm)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				Error(w, r, http.StatusRequestEntityTooLarge, "What was sent is far longer than this form allows. Nothing was changed.")
				return
			}
			Error(w, r, http.StatusBadRequest, "The form could not be read. Nothing was changed; please try again.")
			return
		}
		if !validCSRF(SessionOf(r), r.PostForm.Get("csrf")) {
			Error(w, r, http.StatusForbidden, "This form is out of date (the page was open for a long time, or the box restarted). Nothing was changed: go back, reload the page and send it again.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SameOrigin reports whether a request's Origin and Sec-Fetch-Site
// headers say it came from this site's own pages. A request without either
// header does not come from a browser page, so no other site can have made
// it (the CSRF token still has to match).
//
// Origin "null" alone is not enough: under Referrer-Policy no-referrer
// (ours: tokens are in URLs) browsers send "Origin: null" on every form
// POST, our own included (found by the chromium e2e test), so then
// Sec-Fetch-Site must vouch for it.
func SameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	switch site {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	switch o {
	case "":
		return true
	case "null":
		// Over plain HTTP (http://hearth.local on the home network) a
		// browser sends no Sec-Fetch-* at all: they go only to
		// trustworthy origins (HTTPS, loopback). Found by the qemu
		// whole-product test (image/product_e2e_test.go): every form of
		// the wizard was refused on a real box. A form from another
		// site is still stopped: it lacks the SameSite=Strict session
		// cookie, so its CSRF token cannot match.
		return site == "same-origin" || (site == "" && r.TLS == nil)
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host)
}

// RequireLogin lets only logged-in sessions through: a page view goes to
// the login page (and back afterwards), anything else gets 401.
func RequireLogin(next http.Handler) http.Handler { return require(false, next) }

// RequireAdmin is RequireLogin for admins only (403 for other members).
func RequireAdmin(next http.Handler) http.Handler { return require(true, next) }

// LoginPath is the login page RequireLogin sends visitors to.
const LoginPath = "/login"

func require(admin bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := SessionOf(r)
		var user string
		var isAdmin bool
		if x != nil {
			user, isAdmin = x.User, x.Admin
		}
		switch {
		case user == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			http.Redirect(w, r, LoginPath+"?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
		case user == "":
			Error(w, r, http.StatusUnauthorized, "Please log in first.")
		case admin && !isAdmin:
			Error(w, r, http.StatusForbidden, "Only the chat's admins can open this page.")
		default:
			next.ServeHTTP(w, r)
		}
	})
}
