package page

import (
	"bytes"
	"html/template"
	"net/http"
)

// errorPage is parsed once: the error page must work even when a page
// package's own templates do not.
var errorPage = template.Must(template.Must(template.New("").Funcs(funcs).ParseFS(assets, "assets/layout.html")).ParseFS(assets, "assets/error.html"))

// Error writes the friendly error page: a plain title for the status and
// the message, with a way back.
func Error(w http.ResponseWriter, r *http.Request, code int, msg string) {
	title := "Something went wrong"
	switch code {
	case http.StatusNotFound:
		title = "This page does not exist"
	case http.StatusForbidden, http.StatusUnauthorized:
		title = "Not allowed"
	case http.StatusTooManyRequests:
		title = "Too many tries"
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
		title = "That did not work"
	}
	back := "/"
	if r != nil && r.URL != nil && r.URL.Path != "" && code != http.StatusNotFound {
		back = r.URL.Path
	}
	v := View{Data: struct{ Title, Message, Back string }{title, msg, back}}
	if x := SessionOfSafe(r); x != nil {
		v.CSRF = x.CSRF
	}
	var buf bytes.Buffer
	h := w.Header()
	if err := errorPage.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		w.Write([]byte(msg))
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// SessionOfSafe is SessionOf that accepts a nil request.
func SessionOfSafe(r *http.Request) *Session {
	if r == nil {
		return nil
	}
	return SessionOf(r)
}
