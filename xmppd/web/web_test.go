package web

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// do sends a raw request (the Host header and the path exactly as given,
// which net/http's client would clean up).
func do(t *testing.T, s *Server, method, host, path string, body string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, path, host, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

var okApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "app:"+r.URL.Path) })

func TestStartingPageThenApp(t *testing.T) {
	s := start(t, Options{Dev: true, LAN: func() []string { return []string{"192.168.1.20"} }})
	s.Waiting("storage")
	resp := do(t, s, "GET", "localhost", "/", "")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "Waiting for storage") || !strings.Contains(string(body), `http-equiv="refresh"`) || !strings.Contains(string(body), "192.168.1.20") {
		t.Fatalf("starting page %d: %s", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "<script") {
		t.Error("starting page has a script")
	}
	s.SetApp(okApp)
	resp = do(t, s, "GET", "localhost", "/x", "")
	body, _ = io.ReadAll(resp.Body)
	if string(body) != "app:/x" {
		t.Fatalf("after SetApp: %s", body)
	}
}

func TestHeadersOnEveryResponse(t *testing.T) {
	s := start(t, Options{Dev: true})
	s.SetApp(okApp)
	for _, c := range []struct{ host, path string }{{"localhost", "/"}, {"evil.example", "/"}, {"localhost", "//a"}, {"localhost", "/.well-known/host-meta"}} {
		resp := do(t, s, "GET", c.host, c.path, "")
		h := resp.Header
		if h.Get("Content-Security-Policy") != CSP || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: headers %v", c.host, c.path, h)
		}
	}
}

func TestHostAllowlist(t *testing.T) {
	s := start(t, Options{Domain: func() string { return "club.example" }, Hosts: func() []string { return []string{"abc.onion"} }})
	s.hosts.ifaceAddrs = func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("192.168.1.20"), Mask: net.CIDRMask(24, 32)}}, nil
	}
	s.SetApp(okApp)
	for host, want := range map[string]int{
		"hearth.local": 200, "HEARTH.LOCAL.": 200, "club.example": 200, "upload.club.example": 200,
		"abc.onion": 200, "192.168.1.20": 200, "192.168.1.20:80": 200,
		"evil.example": 421, "club.example.evil.example": 421, "192.168.1.21": 421, "": 421,
		// Loopback only under -dev: a rebinding name may point at 127.0.0.1.
		"localhost": 421, "127.0.0.1": 421,
	} {
		if got := do(t, s, "GET", host, "/", "").StatusCode; got != want {
			t.Errorf("Host %q: %d, want %d", host, got, want)
		}
	}
}

func TestPathNormalisation(t *testing.T) {
	s := start(t, Options{Dev: true})
	s.SetApp(okApp)
	for path, want := range map[string]string{
		"//setup": "/setup", "/a/../setup": "/setup", "/./setup/": "/setup/", "/setup/./account": "/setup/account",
	} {
		resp := do(t, s, "GET", "localhost", path, "")
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("%s: %d → %q, want 308 → %s", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	for _, path := range []string{"/setup%2faccount", "/a%5c..%5csetup"} {
		if got := do(t, s, "GET", "localhost", path, "").StatusCode; got != 400 {
			t.Errorf("%s: %d, want 400", path, got)
		}
	}
	resp := do(t, s, "GET", "localhost", "/setup?code=A", "")
	if b, _ := io.ReadAll(resp.Body); string(b) != "app:/setup" {
		t.Errorf("clean path: %s", b)
	}
}

func TestBodyLimit(t *testing.T) {
	s := start(t, Options{Dev: true})
	got := make(chan error, 1)
	s.SetApp(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		got <- err
	}))
	do(t, s, "POST", "localhost", "/x", strings.Repeat("a", MaxBody+1))
	if err := <-got; err == nil {
		t.Fatal("a body over MaxBody was read whole")
	}
}

// TestHandleStreamOwnsBody: a handler mounted with HandleStream (HTTP
// upload) gets bodies over MaxBody whole; one mounted with Handle does not.
func TestHandleStreamOwnsBody(t *testing.T) {
	s := start(t, Options{Dev: true})
	got := make(chan int64, 2)
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got <- n
	})
	s.HandleStream("/big/", read)
	s.Handle("/small/", read)
	body := strings.Repeat("a", MaxBody+1)
	do(t, s, "PUT", "localhost", "/big/x", body)
	if n := <-got; n != MaxBody+1 {
		t.Errorf("HandleStream handler read %d bytes, want %d", n, MaxBody+1)
	}
	do(t, s, "PUT", "localhost", "/small/x", body)
	if n := <-got; n > MaxBody {
		t.Errorf("Handle handler read %d bytes past MaxBody", n)
	}
}

func TestHostMeta(t *testing.T) {
	s := start(t, Options{Dev: true})
	s.AddLink("urn:xmpp:alt-connections:websocket", "wss://club.example/ws")
	resp := do(t, s, "GET", "localhost", "/.well-known/host-meta.json", "")
	var v struct{ Links []Link }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || len(v.Links) != 1 || v.Links[0].Href != "wss://club.example/ws" {
		t.Fatalf("host-meta.json: %v %+v", err, v)
	}
	resp = do(t, s, "GET", "localhost", "/.well-known/host-meta", "")
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">`) || !strings.Contains(string(b), `rel="urn:xmpp:alt-connections:websocket"`) {
		t.Fatalf("host-meta: %s", b)
	}
}

func TestACMEChallengeForwarded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inner := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "answer for %s %s", r.Host, r.URL.Path)
	})}
	go inner.Serve(ln)
	defer inner.Close()
	s := start(t, Options{Domain: func() string { return "club.example" }, ACMEChallenge: ln.Addr().String()})
	s.SetApp(okApp)
	resp := do(t, s, "GET", "club.example", "/.well-known/acme-challenge/tok123", "")
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "answer for club.example /.well-known/acme-challenge/tok123" {
		t.Fatalf("challenge: %d %s", resp.StatusCode, b)
	}
	// No challenge open (nothing listening): 404, not a proxy error.
	s2 := start(t, Options{Domain: func() string { return "club.example" }, ACMEChallenge: "127.0.0.1:1"})
	if got := do(t, s2, "GET", "club.example", "/.well-known/acme-challenge/x", "").StatusCode; got != 404 {
		t.Errorf("closed challenge listener: %d", got)
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	public := false
	s := start(t, Options{Domain: func() string { return "club.example" }, TLSAddr: "127.0.0.1:0", TLSConfig: selfTLS(t), PublicCert: func() bool { return public }})
	s.SetApp(okApp)
	if got := do(t, s, "GET", "club.example", "/setup", "").StatusCode; got != 200 {
		t.Fatalf("without a public certificate: %d", got)
	}
	public = true
	resp := do(t, s, "GET", "club.example", "/x?a=1", "")
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://club.example/x?a=1" {
		t.Errorf("public name: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The LAN name and challenges stay on HTTP.
	if got := do(t, s, "GET", "hearth.local", "/setup", "").StatusCode; got != 200 {
		t.Errorf("hearth.local: %d", got)
	}
	if got := do(t, s, "GET", "club.example", "/.well-known/acme-challenge/x", "").StatusCode; got != 404 {
		t.Errorf("challenge: %d", got)
	}
}
