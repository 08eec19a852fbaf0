package webchat

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func serve(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, "http://hearth.local"+path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	var rd io.Reader = res.Body
	if res.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		rd = z
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func clubHandler() http.Handler {
	return Handler(Options{
		Domain: func() string { return "club.example" },
		Rooms:  func() []string { return []string{"lobby@rooms.club.example"} },
	})
}

// outside finds URLs to other hosts: the page must load nothing from
// anywhere but the box (xmlns-style identifiers in comments aside, our
// files name no host at all).
var outside = regexp.MustCompile(`(?i)\b(https?|wss?)://[a-z0-9\[]|[^:/]//[a-z0-9-]+\.[a-z]{2,}/`)

func TestOurFiles(t *testing.T) {
	h := clubHandler()
	for _, tc := range []struct{ path, ctype string }{
		{"/chat/hearth/hearth-chat.js", "text/javascript; charset=utf-8"},
		{"/chat/hearth/webcrypto-shim.js", "text/javascript; charset=utf-8"},
		{"/chat/hearth/hearth-chat.css", "text/css; charset=utf-8"},
		{"/chat/hearth/icon.svg", "image/svg+xml"},
	} {
		res := serve(t, h, "GET", tc.path, nil)
		if res.StatusCode != 200 {
			t.Fatalf("%s: %d", tc.path, res.StatusCode)
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("%s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		b := body(t, res)
		if strings.HasSuffix(tc.path, ".svg") {
			b = strings.Replace(b, `xmlns="http://www.w3.org/2000/svg"`, "", 1)
		}
		if m := outside.FindString(b); m != "" {
			t.Errorf("%s names another host: %q", tc.path, m)
		}
		checkCSP(t, tc.path, res)
	}
}

func checkCSP(t *testing.T, path string, res *http.Response) {
	t.Helper()
	csp := res.Header.Get("Content-Security-Policy")
	if csp == "" {
		t.Fatalf("%s: no CSP", path)
	}
	for _, want := range []string{"default-src 'self'", "script-src 'self' 'wasm-unsafe-eval';", "style-src 'self' 'unsafe-inline';", "connect-src 'self' ws://hearth.local wss://hearth.local;", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: CSP %q lacks %q", path, csp, want)
		}
	}
	for _, bad := range []string{"'unsafe-eval'", "*", "http:", "https:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("%s: CSP %q allows %q", path, csp, bad)
		}
	}
}

func TestIndex(t *testing.T) {
	h := clubHandler()
	res := serve(t, h, "GET", "/chat/", nil)
	checkCSP(t, "/chat/", res)
	if !Built() {
		t.Skip("Converse's files are not embedded (make webchat-assets)")
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("/chat/: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	b := body(t, res)
	for _, want := range []string{
		`data-domain="club.example"`,
		`data-rooms="[&#34;lobby@rooms.club.example&#34;]"`,
		`data-websocket="/xmpp-websocket"`,
		`<script type="module" src="dist/converse.min.js"></script>`,
		`<script type="module" src="hearth/hearth-chat.js"></script>`,
		`href="dist/converse.min.css"`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("index lacks %s", want)
		}
	}
	if m := outside.FindString(b); m != "" {
		t.Errorf("index names another host: %q", m)
	}
	// No inline script: every <script> has a src and no content.
	for _, s := range regexp.MustCompile(`(?s)<script[^>]*>(.*?)</script>`).FindAllStringSubmatch(b, -1) {
		if !strings.Contains(s[0], " src=") || strings.TrimSpace(s[1]) != "" {
			t.Errorf("inline script: %s", s[0])
		}
	}
	if strings.Contains(b, " style=") || strings.Contains(b, "<style") {
		t.Error("inline style in the index")
	}
	// A domain that needs escaping stays an attribute value.
	h2 := Handler(Options{Domain: func() string { return `x"><script>` }})
	if b := body(t, serve(t, h2, "GET", "/chat/", nil)); strings.Contains(b, `x"><script>`) {
		t.Error("domain not escaped")
	}
	// /chat and /chat/index.html lead to the one page.
	if res := serve(t, h, "GET", "/chat", nil); res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/chat/" {
		t.Errorf("/chat: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestConverseFiles(t *testing.T) {
	if !Built() {
		t.Skip("Converse's files are not embedded (make webchat-assets)")
	}
	h := clubHandler()
	for _, tc := range []struct{ path, ctype string }{
		{"/chat/dist/converse.min.js", "text/javascript; charset=utf-8"},
		{"/chat/dist/converse.min.css", "text/css; charset=utf-8"},
		{"/chat/dist/emoji.json", "application/json"},
		{"/chat/dist/libomemo.esm.min.js", "text/javascript; charset=utf-8"},
		{"/chat/dist/curve25519_compiled.wasm", "application/wasm"},
		{"/chat/dist/webfonts/muli.ttf", "font/ttf"},
		{"/chat/dist/sounds/msg_received.ogg", "audio/ogg"},
		{"/chat/dist/noble/_md.js", "text/javascript; charset=utf-8"}, // "_" names need embed's all:
		{"/chat/dist/noble/sha2.js", "text/javascript; charset=utf-8"},
	} {
		plain := serve(t, h, "GET", tc.path, nil)
		if plain.StatusCode != 200 || plain.Header.Get("Content-Type") != tc.ctype {
			t.Fatalf("%s: %d %q", tc.path, plain.StatusCode, plain.Header.Get("Content-Type"))
		}
		checkCSP(t, tc.path, plain)
		want := body(t, plain)
		gz := serve(t, h, "GET", tc.path, map[string]string{"Accept-Encoding": "gzip, br"})
		if got := body(t, gz); got != want {
			t.Errorf("%s: gzipped body differs (%d vs %d bytes)", tc.path, len(got), len(want))
		}
		compressed := !strings.HasSuffix(tc.path, ".ttf") && !strings.HasSuffix(tc.path, ".ogg")
		if (gz.Header.Get("Content-Encoding") == "gzip") != compressed || !strings.Contains(gz.Header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("%s: Content-Encoding %q Vary %q", tc.path, gz.Header.Get("Content-Encoding"), gz.Header.Get("Vary"))
		}
		etag := plain.Header.Get("ETag")
		if etag == "" || gz.Header.Get("ETag") != etag {
			t.Errorf("%s: ETag %q / %q", tc.path, etag, gz.Header.Get("ETag"))
		}
		for _, enc := range []string{"", "gzip"} {
			if res := serve(t, h, "GET", tc.path, map[string]string{"If-None-Match": etag, "Accept-Encoding": enc}); res.StatusCode != http.StatusNotModified {
				t.Errorf("%s (%q): revalidation gave %d", tc.path, enc, res.StatusCode)
			}
		}
	}
}

// A binary built before make webchat-assets (a fresh clone's go build)
// says so at /chat/ and serves none of Converse's paths.
func TestNotBuilt(t *testing.T) {
	h := newHandler(Options{Domain: func() string { return "club.example" }}, fstest.MapFS{"dist/README.md": {Data: []byte("x")}})
	res := serve(t, h, "GET", "/chat/", nil)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body(t, res), "not part of this build") {
		t.Fatalf("unbuilt /chat/: %d", res.StatusCode)
	}
	checkCSP(t, "/chat/", res)
	if res := serve(t, h, "GET", "/chat/dist/converse.min.js", nil); res.StatusCode != 404 {
		t.Errorf("unbuilt converse.min.js: %d", res.StatusCode)
	}
	if res := serve(t, h, "GET", "/chat/hearth/hearth-chat.js", nil); res.StatusCode != 200 {
		t.Errorf("our script: %d", res.StatusCode)
	}
}

func TestRefused(t *testing.T) {
	h := clubHandler()
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"POST", "/chat/", http.StatusMethodNotAllowed},
		{"PUT", "/chat/hearth/hearth-chat.js", http.StatusMethodNotAllowed},
		{"GET", "/chat/dist/README.md", 404},
		{"GET", "/chat/dist/converse.min.js.gz", 404},
		{"GET", "/chat/dist/", 404},
		{"GET", "/chat/dist/noble", 404},
		{"GET", "/chat/dist/LICENSE.converse", 404},
		{"GET", "/chat/hearth/index.html", 404},
		{"GET", "/chat/hearth/", 404},
		{"GET", "/chat/nothing", 404},
		{"GET", "/chat/dist/../hearth/hearth-chat.js", 404},
	} {
		res := serve(t, h, tc.method, tc.path, nil)
		if res.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.code)
		}
		checkCSP(t, tc.path, res)
	}
}

func TestHandoff(t *testing.T) {
	now := time.Unix(1e9, 0)
	hs := &Handoffs{now: func() time.Time { return now }}
	h := Handler(Options{Domain: func() string { return "club.example" }, Handoffs: hs})
	post := func(tok string, hdr map[string]string) *http.Response {
		r := httptest.NewRequest("POST", "http://hearth.local/chat/handoff", nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		if tok != "" {
			r.AddCookie(&http.Cookie{Name: HandoffCookie, Value: tok})
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Result()
	}
	same := map[string]string{"Sec-Fetch-Site": "same-origin"}

	// The invite page's side: cookie for /chat/ only, redirect to #handoff.
	tok := hs.Put("ann@club.example", "green kettle")
	w := httptest.NewRecorder()
	hs.Redirect(w, httptest.NewRequest("POST", "http://hearth.local/i/x/join", nil), tok)
	res := w.Result()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/chat/#handoff" {
		t.Fatalf("redirect: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if c := res.Cookies()[0]; c.Value != tok || c.Path != "/chat/" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %+v", c)
	}

	if res := post(tok, map[string]string{"Sec-Fetch-Site": "cross-site"}); res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site: %d", res.StatusCode)
	}
	if res := post(tok, map[string]string{"Origin": "http://evil.example"}); res.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: %d", res.StatusCode)
	}
	res = post(tok, same)
	if b := body(t, res); res.StatusCode != 200 || b != `{"jid":"ann@club.example","password":"green kettle"}`+"\n" {
		t.Fatalf("hand-off: %d %q", res.StatusCode, b)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Error("hand-off cacheable")
	}
	// Once only.
	if res := post(tok, same); res.StatusCode != 404 {
		t.Errorf("second take: %d", res.StatusCode)
	}
	// Not after HandoffTTL, not a guessed token, not without a cookie.
	late := hs.Put("bob@club.example", "pw")
	now = now.Add(HandoffTTL + time.Second)
	for _, tk := range []string{late, "guess", ""} {
		if res := post(tk, same); res.StatusCode != 404 {
			t.Errorf("token %q: %d", tk, res.StatusCode)
		}
	}
	// Bounded.
	for i := 0; i < 3*maxHandoffs; i++ {
		hs.Put("x@club.example", "pw")
	}
	if len(hs.m) > maxHandoffs {
		t.Errorf("%d hand-offs kept", len(hs.m))
	}
	// Without Handoffs configured: 404, no panic.
	h2 := Handler(Options{Domain: func() string { return "club.example" }})
	r := httptest.NewRequest("POST", "http://hearth.local/chat/handoff", nil)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.AddCookie(&http.Cookie{Name: HandoffCookie, Value: tok})
	w = httptest.NewRecorder()
	h2.ServeHTTP(w, r)
	if w.Code != 404 {
		t.Errorf("unconfigured: %d", w.Code)
	}
}

// The upload service's origin is in the policy wherever the page needs it
// (Converse PUTs the photo, then shows it), and nothing else gets in.
func TestCSPUploadOrigin(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"http://club.example:8080", "http://club.example:8080"},
		{"https://club.example", "https://club.example"},
		{"https://club.example/up", "https://club.example"},
		{"ftp://club.example", ""},
		{"https://a.example; script-src *", ""},
		{"", ""},
	} {
		h := Handler(Options{Domain: func() string { return "club.example" }, Upload: func() string { return tc.base }})
		res := serve(t, h, "GET", "/chat/", nil)
		csp := res.Header.Get("Content-Security-Policy")
		for _, dir := range []string{"img-src", "media-src", "connect-src"} {
			var src string
			for _, d := range strings.Split(csp, ";") {
				if f := strings.Fields(d); len(f) > 0 && f[0] == dir {
					src = d
				}
			}
			has := tc.want != "" && strings.Contains(src+" ", " "+tc.want+" ")
			if has != (tc.want != "") {
				t.Errorf("upload %q: %s is %q, want it to name %q", tc.base, dir, src, tc.want)
			}
		}
		if strings.Count(csp, "script-src") != 1 || strings.Contains(csp, "*") {
			t.Errorf("upload %q: CSP %q", tc.base, csp)
		}
	}
}

// OMEMO's WebAssembly is cached for a while (libomemo fetches it for every
// key operation); everything else is revalidated.
func TestCacheControl(t *testing.T) {
	for name, want := range map[string]string{
		"dist/curve25519_compiled.wasm": "max-age=3600",
		"dist/converse.min.js":          "no-cache",
		"dist/libomemo.esm.min.js":      "no-cache",
		"static/hearth-chat.js":         "no-cache",
	} {
		if got := cacheControl(name); got != want {
			t.Errorf("%s: Cache-Control %q, want %q", name, got, want)
		}
	}
	if !Built() {
		t.Skip("Converse's files are not embedded (make webchat-assets)")
	}
	res := serve(t, clubHandler(), "GET", "/chat/dist/curve25519_compiled.wasm", nil)
	if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "max-age=3600" || res.Header.Get("Content-Type") != "application/wasm" {
		t.Errorf("wasm: %d %q %q", res.StatusCode, res.Header.Get("Cache-Control"), res.Header.Get("Content-Type"))
	}
}
