// Package admin is xmppd's local admin API: HTTP over a unix socket in the
// state directory (mode 0600), used by the command line, the setup pages
// and the update agent. Nothing on the network reaches it.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/appliance/version"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/portable"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
)

// Deps is what the API works on.
type Deps struct {
	Server *server.Server
	Store  *store.Store
	// LoginCheck performs a real client login over loopback.
	LoginCheck func(context.Context) error
}

var started = time.Now()

// Handler returns the API's routes.
func Handler(d Deps) http.Handler {
	mux := http.NewServeMux()
	// Profiles for measuring memory per session and CPU per message on the
	// device itself; the socket is reachable only by root on the box.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		checks := map[string]string{}
		ok := true
		if err := d.Store.Check(); err != nil {
			checks["storage"] = err.Error()
			ok = false
		} else {
			checks["storage"] = "ok"
		}
		ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
		defer cancel()
		if err := d.LoginCheck(ctx); err != nil {
			checks["login"] = err.Error()
			ok = false
		} else {
			checks["login"] = "ok"
		}
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{
			"ok": ok, "version": version.Version, "checks": checks,
			"uptime_s": int(time.Since(started).Seconds()), "sessions": d.Server.Router.Count(),
		})
	})
	// A consistent copy of the database for `xmppd backup` while the
	// server holds the file (appliance/backup).
	mux.HandleFunc("GET /backup/db", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		d.Store.Backup(w) // an error cuts the body short; the caller's page check fails
	})
	// `xmppd export NAME` while the server holds the database: one read
	// transaction, streamed (xmppd/portable).
	mux.HandleFunc("GET /users/{user}/export", func(w http.ResponseWriter, r *http.Request) {
		user, err := NormalizeUser(r.PathValue("user"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if a, err := d.Store.Account(user); err != nil || a == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such account"})
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		// An error cuts the document short; the caller sees it unclosed.
		portable.ExportWith(d.Store, d.Server.Domain, []string{user}, w, portable.ExportOptions{Ejabberd: r.URL.Query().Get("for") == "ejabberd"})
	})
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			User     string `json:"user"`
			Password string `json:"password"`
			Admin    bool   `json:"admin"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		user, err := NormalizeUser(req.User)
		if err != nil || req.Password == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid user name or empty password"})
			return
		}
		if err := d.Store.CreateAccount(user, req.Password, req.Admin); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, store.ErrExists) {
				code = http.StatusConflict
			}
			writeJSON(w, code, map[string]string{"error": err.Error()})
			return
		}
		server.AccountRegistered.Fire(d.Server, server.Registration{User: user})
		writeJSON(w, http.StatusCreated, map[string]string{"jid": user + "@" + d.Server.Domain})
	})
	mux.HandleFunc("GET /users", func(w http.ResponseWriter, r *http.Request) {
		users, err := d.Store.Users()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"users": users})
	})
	mux.HandleFunc("DELETE /users/{user}", func(w http.ResponseWriter, r *http.Request) {
		if err := d.Server.DeleteAccount(r.PathValue("user")); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, store.ErrNotFound) {
				code = http.StatusNotFound
			}
			writeJSON(w, code, map[string]string{"error": err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /invites", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Hours   int    `json:"hours"`
			Uses    int    `json:"uses"`
			User    string `json:"user"`
			Inviter string `json:"inviter"`
			Admin   bool   `json:"admin"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if req.User != "" {
			u, err := NormalizeUser(req.User)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			req.User = u
		}
		inv, err := invites.Create(d.Store, invites.Options{
			TTL: time.Duration(req.Hours) * time.Hour, Uses: req.Uses, User: req.User, Inviter: req.Inviter, Admin: req.Admin,
		})
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, invites.ErrBadOptions) || errors.Is(err, invites.ErrTooMany) {
				code = http.StatusBadRequest // hours or uses out of bounds, or too many open
			}
			writeJSON(w, code, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusCreated, inviteJSON(inv, d.Server.Domain))
	})
	mux.HandleFunc("GET /invites", func(w http.ResponseWriter, r *http.Request) {
		list, err := invites.List(d.Store)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		out := []map[string]any{}
		for _, inv := range list {
			out = append(out, inviteJSON(inv, d.Server.Domain))
		}
		writeJSON(w, http.StatusOK, map[string]any{"invites": out})
	})
	mux.HandleFunc("DELETE /invites/{token}", func(w http.ResponseWriter, r *http.Request) {
		if err := invites.Revoke(d.Store, r.PathValue("token")); err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func inviteJSON(inv *invites.Invite, domain string) map[string]any {
	return map[string]any{
		"token": inv.Token, "uri": inv.URI(domain), "expires": inv.Expires, "uses": inv.Uses,
		"user": inv.User, "inviter": inv.Inviter, "admin": inv.Admin,
	}
}

// NormalizeUser applies the JID localpart rules (PRECIS) to a user name.
func NormalizeUser(name string) (string, error) {
	j, err := jid.New(name, "localhost", "")
	if err != nil || j.Localpart() == "" {
		return "", errors.New("invalid user name")
	}
	return j.Localpart(), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
