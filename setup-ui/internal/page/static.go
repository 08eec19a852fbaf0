package page

import (
	"net/http"
)

// StaticHandler serves the style sheet at CSSPath.
func StaticHandler() http.Handler {
	css, err := assets.ReadFile("assets/hearth.css")
	if err != nil {
		panic(err) // embedded at build time
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			Error(w, r, http.StatusMethodNotAllowed, "This address only shows a file.")
			return
		}
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(css)
	})
}
