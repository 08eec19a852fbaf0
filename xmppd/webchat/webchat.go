// Package webchat serves the browser chat at /chat/: Converse.js,
// configured by our own script for a closed club server (locked to the
// box's domain, same-origin WebSocket at /xmpp-websocket, no registration
// form, no SASL PLAIN, nothing fetched from any other host).
//
// Converse's files are not in the repository: mk/webchat.mk runs `npm ci`
// on webchat/package-lock.json and copies what the page loads into
// dist/, which is git-ignored but for its README. The embed below is of
// that directory, so `go build ./...` and `go vet ./...` work on a fresh
// clone without npm (a build tag would have kept the package from
// compiling in one of the two states, and vet checks only the tags it is
// given); such a binary answers /chat/ with a page that says the chat was
// not built in (Built reports it).
//
// Files of ours (static/): index.html (a template: the domain and the
// rooms to join go in data- attributes, since the CSP forbids inline
// script), hearth-chat.js (the configuration), hearth-chat.css (our name,
// colours and touch targets) and webcrypto-shim.js.
//
// WebCrypto exists only in secure contexts, and Converse's SCRAM needs
// crypto.subtle (digest, HMAC importKey/sign, PBKDF2 deriveBits). Over
// plain http://hearth.local the page loads webcrypto-shim.js, which
// provides exactly those from @noble/hashes' ES modules (served as they
// are from dist/noble/, no bundler), and turns OMEMO off with a note on
// the page. PLAIN is never offered to the server: the configuration
// registers only the SCRAM mechanisms.
package webchat

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed all:dist
var distFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the chat is mounted.
const Prefix = "/chat/"

// WebSocketPath is the XMPP-over-WebSocket endpoint (xmppd/ws) the page
// connects to, on the same origin as the page.
const WebSocketPath = "/xmpp-websocket"

// Options configure the chat page.
type Options struct {
	// Domain is the chat's domain: Converse is locked to it.
	Domain func() string
	// Rooms lists the rooms (full addresses) every member joins on
	// login: the club's default room once group chat exists. nil: none.
	Rooms func() []string
	// Upload is the base URL of the HTTP upload service's files
	// (xmppd/mod/upload's BaseURL: "http://hearth.local",
	// "https://club.example:8443"), asked per page; "" for none. Its
	// origin is added to the CSP's connect-src (Converse PUTs the file
	// there), img-src and media-src (the chat shows what was shared):
	// the slot URLs name the chat's domain, which is not the page's
	// origin when the page is opened at hearth.local or an address, and
	// the browser test saw every photo upload blocked by connect-src.
	Upload func() string
	// Handoffs, when set, lets the invite page log a new member in here
	// (handoff.go).
	Handoffs *Handoffs
	Log      *slog.Logger
}

// Built reports whether Converse's files were embedded (make
// webchat-assets ran before the build).
func Built() bool { return built(distFS) }

func built(fsys fs.FS) bool {
	_, err := fs.Stat(fsys, "dist/converse.min.js")
	return err == nil
}

// CSP is the chat's policy: the setup pages' (xmppd/web.CSP) plus what
// Converse needs, still nothing from another host and no inline script.
// Inline style is allowed here (not on the setup pages): Converse's lit
// templates set style attributes and its bundle inserts <style> elements
// (the browser test saw ~100 blocked, and the layout broke); styles
// cannot run code, and with no inline script and nothing from other
// hosts an injected style has nowhere to send what it could read.
// 'wasm-unsafe-eval' lets OMEMO compile its curve25519 WebAssembly (it
// allows no JavaScript eval); blob: images and media are previews of
// files being sent; the WebSocket is named with its scheme and host as
// well as 'self' because Safari before 15.4 did not let 'self' match
// ws:/wss:.
// upload is the upload service's origin ("" for none; see Options.Upload).
func CSP(host, upload string) string {
	files := ""
	if upload != "" {
		files = " " + upload
	}
	return "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data: blob:" + files + "; media-src 'self' blob:" + files + "; font-src 'self'; " +
		"connect-src 'self' ws://" + host + " wss://" + host + files + "; worker-src 'self'; " +
		"object-src 'none'; frame-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
}

// Handler serves everything under Prefix.
func Handler(o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Domain == nil {
		o.Domain = func() string { return "" }
	}
	return newHandler(o, distFS)
}

// newHandler takes the files to serve as dist/ (tests give an unbuilt
// tree).
func newHandler(o Options, dist fs.FS) *handler {
	return &handler{o: o, dist: dist, built: built(dist), index: template.Must(template.ParseFS(staticFS, "static/index.html"))}
}

type handler struct {
	o     Options
	dist  fs.FS
	built bool
	index *template.Template

	mu    sync.Mutex
	etags map[string]string // embedded path ("static/…", "dist/…") → ETag
}

// types are the content types of every file the chat serves, by
// extension (not mime.TypeByExtension: that depends on the host's
// /etc/mime.types, and a wrong type for .wasm or .js breaks the page).
var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".json": "application/json",
	".wasm": "application/wasm",
	".ttf":  "font/ttf",
	".mp3":  "audio/mpeg",
	".ogg":  "audio/ogg",
	".svg":  "image/svg+xml",
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	// r.Host passed the web server's allowlist; its port stays in the
	// source (ws://127.0.0.1:8080 under make run).
	hdr.Set("Content-Security-Policy", CSP(r.Host, h.uploadOrigin()))
	if r.URL.Path == Prefix+"handoff" {
		h.o.Handoffs.serve(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(Prefix, "/"))
	switch {
	case p == "" || p == "/" && r.URL.Path != Prefix:
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
	case p == "/" || p == "/index.html":
		h.serveIndex(w, r)
	case strings.HasPrefix(p, "/hearth/"):
		h.serveFile(w, r, staticFS, "static/"+strings.TrimPrefix(p, "/hearth/"))
	case strings.HasPrefix(p, "/dist/") && h.built:
		h.serveFile(w, r, h.dist, "dist/"+strings.TrimPrefix(p, "/dist/"))
	default:
		http.NotFound(w, r)
	}
}

// uploadOrigin is scheme://host[:port] of Options.Upload, or "" when
// there is none or it is not a plain http(s) origin (nothing odd goes
// into the policy).
func (h *handler) uploadOrigin() string {
	if h.o.Upload == nil {
		return ""
	}
	u, err := url.Parse(h.o.Upload())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.ContainsAny(u.Host, " ;,'\"") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func (h *handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", types[".html"])
	hdr.Set("Cache-Control", "no-cache")
	if !h.built {
		hdr.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, notBuilt)
		return
	}
	var rooms []string
	if h.o.Rooms != nil {
		rooms = h.o.Rooms()
	}
	if rooms == nil {
		rooms = []string{}
	}
	rj, _ := json.Marshal(rooms)
	var b bytes.Buffer
	if err := h.index.Execute(&b, struct {
		Domain string
		Rooms  string
		WS     string
	}{h.o.Domain(), string(rj), WebSocketPath}); err != nil {
		h.o.Log.Error("webchat: index", "err", err)
		http.Error(w, "The chat page failed.", http.StatusInternalServerError)
		return
	}
	w.Write(b.Bytes())
}

const notBuilt = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat not available</title></head>
<body><main><h1>The browser chat is not part of this build</h1>
<p>This box was built without the chat page's files (make webchat-assets).
Members can still use a chat app on their phone or computer.</p>
</main></body></html>
`

// serveFile serves one embedded file, gzipped when the browser accepts it
// and a .gz was embedded beside it, with an ETag (the files' names carry
// no version, so browsers revalidate: Cache-Control no-cache).
func (h *handler) serveFile(w http.ResponseWriter, r *http.Request, fsys fs.FS, name string) {
	if strings.HasSuffix(name, ".gz") || path.Clean(name) != name || strings.HasSuffix(name, "/") ||
		path.Base(name) == "index.html" || path.Base(name) == "README.md" {
		http.NotFound(w, r)
		return
	}
	ct, ok := types[path.Ext(name)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ct)
	hdr.Set("Cache-Control", cacheControl(name))
	hdr.Add("Vary", "Accept-Encoding")
	etag := h.etag(name, b)
	hdr.Set("ETag", etag)
	if acceptsGzip(r) {
		if gz, err := fs.ReadFile(fsys, name+".gz"); err == nil {
			if match(r.Header.Get("If-None-Match"), etag) {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			hdr.Set("Content-Encoding", "gzip")
			hdr.Set("Content-Length", fmt.Sprint(len(gz)))
			if r.Method != http.MethodHead {
				w.Write(gz)
			}
			return
		}
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// cacheControl: every file is revalidated (no-cache; the names carry no
// version), but OMEMO's WebAssembly: Converse 14's libomemo fetches
// curve25519_compiled.wasm anew for its key operations, 107 requests
// after one login in the browser test, each a round trip to the box for
// a 304. An hour in the browser's cache makes that one request; a Hearth
// update that changes the file is picked up within the hour.
func cacheControl(name string) string {
	if path.Ext(name) == ".wasm" {
		return "max-age=3600"
	}
	return "no-cache"
}

// etag is a hash of the file's content (computed once per file: the
// embedded files never change while the process runs).
func (h *handler) etag(name string, b []byte) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.etags[name]; ok {
		return e
	}
	if h.etags == nil {
		h.etags = map[string]string{}
	}
	sum := sha256.Sum256(b)
	e := `"` + hex.EncodeToString(sum[:12]) + `"`
	h.etags[name] = e
	return e
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(strings.TrimSpace(q), " ", "") != "q=0" {
			return true
		}
	}
	return false
}

func match(ifNoneMatch, etag string) bool {
	for _, t := range strings.Split(ifNoneMatch, ",") {
		t = strings.TrimSpace(t)
		if t == etag || t == "W/"+etag || t == "*" {
			return true
		}
	}
	return false
}
