package webchat

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Handoffs carry a member who just made an account on the invite page
// (setup-ui) into /chat/, logged in, without a second password prompt:
// the page that made the account calls Put and Redirect; /chat/#handoff
// then asks POST /chat/handoff once, with the cookie, for the name and
// password, and Converse logs in with SCRAM (keeping only SCRAM keys).
// The password stays in memory at most HandoffTTL and is handed out
// once; the server saw it in the registration form anyway.
type Handoffs struct {
	mu  sync.Mutex
	m   map[string]handoff
	now func() time.Time // tests
}

type handoff struct {
	jid, password string
	expires       time.Time
}

// HandoffTTL bounds how long a hand-off waits; HandoffCookie carries its
// token (HttpOnly, SameSite=Strict, Path=/chat/).
const (
	HandoffTTL    = 2 * time.Minute
	HandoffCookie = "hearth_chat_handoff"
	maxHandoffs   = 100 // registrations are rate-limited far below this
)

// Put stores a login for one hand-off and returns its token.
func (h *Handoffs) Put(jid, password string) string {
	var b [24]byte
	rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock()
	if h.m == nil {
		h.m = map[string]handoff{}
	}
	for k, v := range h.m {
		if now.After(v.expires) {
			delete(h.m, k)
		}
	}
	if len(h.m) >= maxHandoffs {
		for k := range h.m { // full of live ones: drop any, never grow
			delete(h.m, k)
			break
		}
	}
	h.m[tok] = handoff{jid, password, now.Add(HandoffTTL)}
	return tok
}

// Redirect sends the browser to /chat/ with the hand-off's cookie.
func (h *Handoffs) Redirect(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{Name: HandoffCookie, Value: token, Path: Prefix, MaxAge: int(HandoffTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, Prefix+"#handoff", http.StatusSeeOther)
}

func (h *Handoffs) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

func (h *Handoffs) take(tok string) (handoff, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[tok]
	delete(h.m, tok)
	if !ok || h.clock().After(v.expires) {
		return handoff{}, false
	}
	return v, true
}

// serve answers POST /chat/handoff: only from the box's own pages
// (Sec-Fetch-Site same-origin, or an Origin equal to the Host), once.
func (h *Handoffs) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
		return
	}
	site := r.Header.Get("Sec-Fetch-Site")
	origin := r.Header.Get("Origin")
	if site != "" && site != "same-origin" || site == "" && origin != "http://"+r.Host && origin != "https://"+r.Host {
		http.Error(w, "Forbidden.", http.StatusForbidden)
		return
	}
	c, err := r.Cookie(HandoffCookie)
	http.SetCookie(w, &http.Cookie{Name: HandoffCookie, Path: Prefix, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	if err != nil || h == nil {
		http.Error(w, "No hand-off.", http.StatusNotFound)
		return
	}
	v, ok := h.take(c.Value)
	if !ok {
		http.Error(w, "No hand-off.", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"jid": v.jid, "password": v.password})
}
