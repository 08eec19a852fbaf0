package page

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// CookieName is the session cookie.
const CookieName = "hearth_session"

// Session is one browser's visit. Anonymous sessions (no User) exist so
// that forms shown before login carry a CSRF token too. A Session is never
// changed after it is stored (Sessions.Change makes a new one), so
// handlers read its fields freely.
type Session struct {
	ID   string
	CSRF string
	// User is the logged-in account ("" when nobody logged in); Admin
	// whether it is an admin.
	User  string
	Admin bool
	// Setup is set once the setup code was accepted: the wizard's next
	// step may create the first account.
	Setup bool

	last time.Time // guarded by Sessions.mu
}

// Sessions is the in-memory session table: sessions end with the process
// (a restart means logging in again), which keeps nothing secret on disk.
type Sessions struct {
	// Idle is how long a session lives without a request; default 30
	// minutes.
	Idle time.Duration
	// Max bounds the table; the least recently used session goes first.
	// Default 1000.
	Max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]*Session
}

// NewSessions returns an empty table.
func NewSessions() *Sessions {
	return &Sessions{Idle: 30 * time.Minute, Max: 1000, now: time.Now, m: map[string]*Session{}}
}

func token() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux; if it does, no page is safe
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// get returns the live session for id, renewing its idle clock.
func (s *Sessions) get(id string) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.m[id]
	if x == nil {
		return nil
	}
	if s.now().Sub(x.last) > s.Idle {
		delete(s.m, id)
		return nil
	}
	x.last = s.now()
	return x
}

func (s *Sessions) create() *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for id, x := range s.m {
		if now.Sub(x.last) > s.Idle {
			delete(s.m, id)
		}
	}
	for len(s.m) >= s.Max {
		var oldest *Session
		for _, x := range s.m {
			if oldest == nil || x.last.Before(oldest.last) {
				oldest = x
			}
		}
		delete(s.m, oldest.ID)
	}
	x := &Session{ID: token(), CSRF: token(), last: now}
	s.m[x.ID] = x
	return x
}

// Change gives the visitor a new session: a copy of x changed by f, under
// a new ID and CSRF token, with its cookie set; x ends. Sessions are never
// changed in place (a browser's requests run concurrently and read them
// without a lock), and a new ID on every change in privilege means a
// session someone planted before login is worth nothing after it.
func (s *Sessions) Change(w http.ResponseWriter, r *http.Request, x *Session, f func(*Session)) *Session {
	n := &Session{User: x.User, Admin: x.Admin, Setup: x.Setup}
	f(n)
	n.ID, n.CSRF = token(), token()
	s.mu.Lock()
	delete(s.m, x.ID)
	n.last = s.now()
	s.m[n.ID] = n
	s.mu.Unlock()
	s.setCookie(w, r, n.ID)
	return n
}

// EndUser ends every session of user: an admin removed the account or
// changed its rights, and pages already open must not keep the old ones.
func (s *Sessions) EndUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, x := range s.m {
		if x.User == user {
			delete(s.m, id)
		}
	}
}

// End logs the session out.
func (s *Sessions) End(w http.ResponseWriter, r *http.Request, x *Session) {
	s.mu.Lock()
	delete(s.m, x.ID)
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

func (s *Sessions) setCookie(w http.ResponseWriter, r *http.Request, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		// Secure only over HTTPS: on the home network the box is
		// reached over plain HTTP (http://hearth.local).
		Secure: r.TLS != nil,
	})
}

type ctxKey struct{}

// Middleware attaches the visitor's session to the request, making an
// anonymous one (and its cookie) when there is none.
func (s *Sessions) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var x *Session
		if c, err := r.Cookie(CookieName); err == nil {
			x = s.get(c.Value)
		}
		if x == nil {
			x = s.create()
			s.setCookie(w, r, x.ID)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, x)))
	})
}

// SessionOf is the request's session (nil outside Middleware).
func SessionOf(r *http.Request) *Session {
	x, _ := r.Context().Value(ctxKey{}).(*Session)
	return x
}

// validCSRF compares in constant time.
func validCSRF(x *Session, got string) bool {
	return x != nil && got != "" && subtle.ConstantTimeCompare([]byte(x.CSRF), []byte(got)) == 1
}
