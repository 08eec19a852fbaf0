package web

import (
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
)

// CSP allows nothing but the box's own files: no inline script, no
// framing, forms only to the box.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

// MaxBody bounds a request body that a mounted handler does not bound
// itself (page forms are limited far below this by setup-ui).
const MaxBody = 1 << 20

const acmePrefix = "/.well-known/acme-challenge/"

func (s *Server) handler(isTLS bool) http.Handler {
	acme := s.acmeHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		if isTLS {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		host, ok := s.hosts.allowed(r.Host)
		if !ok {
			http.Error(w, "This box does not answer to that name.", http.StatusMisdirectedRequest)
			return
		}
		if clean, ok := canonical(r.URL); !ok {
			http.Error(w, "Bad address.", http.StatusBadRequest)
			return
		} else if clean != r.URL.Path {
			u := *r.URL
			u.Path, u.RawPath = clean, ""
			http.Redirect(w, r, u.RequestURI(), http.StatusPermanentRedirect)
			return
		}
		if !s.ownsBody(r.URL.Path) {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		}
		p := r.URL.Path
		if strings.HasPrefix(p, acmePrefix) {
			acme.ServeHTTP(w, r)
			return
		}
		if !isTLS && s.redirectHTTPS(host) {
			u := url.URL{Scheme: "https", Host: r.Host, Path: p, RawQuery: r.URL.RawQuery}
			http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
			return
		}
		switch p {
		case "/.well-known/host-meta":
			s.hostMeta(w, r, false)
			return
		case "/.well-known/host-meta.json":
			s.hostMeta(w, r, true)
			return
		}
		if m := s.mounted(p); m != nil {
			m.ServeHTTP(w, r)
			return
		}
		if app := s.app.Load(); app != nil {
			(*app).ServeHTTP(w, r)
			return
		}
		s.starting(w, r)
	})
}

// canonical returns the clean form of the request path: no "." or ".."
// segments, no doubled slashes, no escaped slash; ok is false for a path
// that cannot be cleaned safely (not absolute, NUL, backslash).
// net/http's ServeMux would also redirect such paths, but only for the
// routes it matches; here no handler ever sees an unclean path.
func canonical(u *url.URL) (string, bool) {
	p := u.Path
	if p == "" || p[0] != '/' || strings.ContainsAny(p, "\x00\\") {
		return "", false
	}
	if strings.Contains(strings.ToLower(u.EscapedPath()), "%2f") {
		return "", false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c, true
}

// redirectHTTPS: plain HTTP goes to HTTPS for the public names once a
// certificate browsers trust exists. The LAN names and addresses stay on
// HTTP (no public certificate can cover hearth.local), and so do ACME
// challenges (handled above).
func (s *Server) redirectHTTPS(host string) bool {
	if s.TLSAddr == nil || s.o.PublicCert == nil || !s.o.PublicCert() {
		return false
	}
	d := s.o.Domain()
	return d != "" && (host == d || strings.HasSuffix(host, "."+d))
}

// acmeHandler forwards challenge requests to netconf's loopback listener
// (which exists only while a challenge is open: 404 otherwise).
func (s *Server) acmeHandler() http.Handler {
	if s.o.ACMEChallenge == "" {
		return http.NotFoundHandler()
	}
	target := &url.URL{Scheme: "http", Host: s.o.ACMEChallenge}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // certmagic matches the challenge by host
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "No certificate challenge is open.", http.StatusNotFound)
		},
	}
}

var startingPage = template.Must(template.New("").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="3">
<title>Starting</title></head>
<body><main>
<h1>The box is starting</h1>
<p>Waiting for {{.Part}}. This page checks again every few seconds by itself.</p>
{{if .LAN}}<p>If this page does not open by its name on a phone, use the box's address: {{range $i, $a := .LAN}}{{if $i}} or {{end}}<strong>http://{{$a}}</strong>{{end}}</p>{{end}}
</main></body></html>`))

var brokenPage = template.Must(template.New("").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="60">
<title>The chat cannot start</title></head>
<body><main>
<h1>The chat cannot start</h1>
<p>{{.}}</p>
</main></body></html>`))

// starting is the page while the app is not installed yet: 503 with
// Retry-After, refreshing itself (no script: the CSP forbids inline script
// anyway).
func (s *Server) starting(w http.ResponseWriter, r *http.Request) {
	if why := s.broken.Load(); why != nil {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		brokenPage.Execute(w, *why)
		return
	}
	var lan []string
	if s.o.LAN != nil {
		for _, a := range s.o.LAN() {
			lan = append(lan, hostPort(a, s.Addr))
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Retry-After", "3")
	w.WriteHeader(http.StatusServiceUnavailable)
	startingPage.Execute(w, struct {
		Part string
		LAN  []string
	}{*s.waiting.Load(), lan})
}

// hostPort writes an address for a URL, with the port unless it is 80.
func hostPort(ip string, bound net.Addr) string {
	_, port, _ := net.SplitHostPort(bound.String())
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	if port == "80" || port == "" {
		return ip
	}
	return fmt.Sprintf("%s:%s", ip, port)
}
