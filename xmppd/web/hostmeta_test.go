package web

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestHostMetaFollowsRequest: a path link is advertised with the name and
// scheme the client used, so a LAN client at http://hearth.local is sent
// to ws://hearth.local/…, not to wss://<domain>/… it may not reach; an
// absolute link stays as given.
func TestHostMetaFollowsRequest(t *testing.T) {
	s := start(t, Options{TLSAddr: "127.0.0.1:0", TLSConfig: selfTLS(t),
		Domain: func() string { return "club.example" }, Hosts: func() []string { return []string{"club.example", "abcdef.onion"} }})
	s.AddLink("urn:xmpp:alt-connections:websocket", "/xmpp-websocket")
	s.AddLink("urn:xmpp:alt-connections:xbosh", "https://bosh.example/b")
	hrefs := func(resp *http.Response) []string {
		t.Helper()
		var v struct{ Links []Link }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		var h []string
		for _, l := range v.Links {
			h = append(h, l.Href)
		}
		return h
	}
	for host, want := range map[string]string{
		"hearth.local":      "ws://hearth.local/xmpp-websocket",
		"HEARTH.local:8080": "ws://HEARTH.local:8080/xmpp-websocket",
		"abcdef.onion":      "ws://abcdef.onion/xmpp-websocket",
	} {
		got := hrefs(do(t, s, "GET", host, "/.well-known/host-meta.json", ""))
		if len(got) != 2 || got[0] != want || got[1] != "https://bosh.example/b" {
			t.Errorf("Host %s: links %q, want %s", host, got, want)
		}
	}
	// A name the box does not answer to gets no host-meta at all.
	if resp := do(t, s, "GET", "evil.example", "/.well-known/host-meta.json", ""); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d", resp.StatusCode)
	}
	// HTTPS: wss://, in the XRD form too.
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, s.TLSAddr.String())
		},
	}}
	resp, err := c.Get("https://club.example/.well-known/host-meta")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `href="wss://club.example/xmpp-websocket"`) {
		t.Fatalf("host-meta over HTTPS: %s", b)
	}
}
