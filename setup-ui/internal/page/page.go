// Package page is the machinery every web page of Hearth shares: the
// layout and style sheet, sessions, CSRF tokens and the Origin check on
// state changes, login rate limits and the friendly error page. The setup
// wizard (setup-ui), the invite landing pages and the admin pages all build
// on it, so the security rules live in one place.
//
// A page package embeds its own templates and parses them on top of the
// layout with Parse; each template file defines "title" and "main". A
// handler renders with Templates.Render, which passes a View (the CSRF
// token, the session, the page's data) to the template. A form puts the
// token in with {{template "csrf" .}}.
//
// State changes go through Protect (POST only; Origin / Sec-Fetch-Site and
// the CSRF token checked; the request body limited); pages for members go
// through RequireLogin, admin pages through RequireAdmin. Nothing here
// opens the database: who may log in is the Verifier's business.
package page

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// CSSPath is where the one style sheet is served (StaticHandler).
const CSSPath = "/static/hearth.css"

// View is what every template gets.
type View struct {
	// Title is set by the template itself ("title"); Name is the chat's
	// name for the header, when there is one.
	Name string
	// CSRF is the session's token; {{template "csrf" .}} writes the
	// hidden field.
	CSRF string
	// Session is the visitor's session (never nil while rendering through
	// Render).
	Session *Session
	// Data is the page's own.
	Data any
}

// Templates are one page package's templates on top of the layout.
type Templates struct {
	pages map[string]*template.Template
	Log   *slog.Logger
	// Name returns the chat's name for the page header ("" for none).
	Name func() string
}

// Parse parses the named files of fsys (globs allowed) on top of the
// layout. Each file defines the blocks "title" and "main" of one page;
// Render's name is the file's base name without ".html". Every page gets a
// template set of its own, since all pages define the same block names.
func Parse(fsys fs.FS, patterns ...string) (*Templates, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(assets, "assets/layout.html")
	if err != nil {
		return nil, err
	}
	out := &Templates{pages: map[string]*template.Template{}}
	for _, pat := range patterns {
		names, err := fs.Glob(fsys, pat)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			t, err := base.Clone()
			if err != nil {
				return nil, err
			}
			if _, err := t.ParseFS(fsys, n); err != nil {
				return nil, err
			}
			out.pages[strings.TrimSuffix(path.Base(n), ".html")] = t
		}
	}
	return out, nil
}

func (ts *Templates) lookup(name string) *template.Template { return ts.pages[name] }

var funcs = template.FuncMap{
	"css": func() string { return CSSPath },
}

// Render writes the page name with status code. A template that fails
// renders the error page instead of half a page.
func (ts *Templates) Render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	t := ts.lookup(name)
	if t == nil {
		ts.fail(w, r, name, nil)
		return
	}
	v := View{Data: data, Session: SessionOf(r)}
	if v.Session != nil {
		v.CSRF = v.Session.CSRF
	}
	if ts.Name != nil {
		v.Name = ts.Name()
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		ts.fail(w, r, name, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (ts *Templates) fail(w http.ResponseWriter, r *http.Request, name string, err error) {
	if ts.Log != nil {
		ts.Log.Error("page template", "page", name, "err", err)
	}
	Error(w, r, http.StatusInternalServerError, "Something went wrong on the box while making this page. Please try again in a minute.")
}
