package xmppd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/mod/upload"
)

// TestUploadURLReachable: the slot URLs name the chat's domain with the
// web port (no public certificate: plain HTTP), and the web server's Host
// allowlist lets that name through to the upload handler (404 for an
// unknown token, not 421). The service is registered and stops with the
// daemon.
func TestUploadURLReachable(t *testing.T) {
	d, err := Start(Options{State: state.Dir(t.TempDir()), Domain: "club.example", C2S: "127.0.0.1:0", Web: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	}()
	if upload.Of(d.Server) == nil || d.Server.Service("upload.club.example") == nil {
		t.Fatal("upload service not registered")
	}
	_, port, _ := net.SplitHostPort(d.Web.Addr.String())
	base := d.uploadBase()
	if want := "http://club.example:" + port; base != want {
		t.Fatalf("base URL %q, want %q", base, want)
	}
	c, err := net.Dial("tcp", d.Web.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %sAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/x.jpg HTTP/1.1\r\nHost: club.example:%s\r\nConnection: close\r\n\r\n", upload.Prefix, port)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Content-Security-Policy") != upload.CSP {
		t.Errorf("GET on the handed-out host: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	if got := hostPort("club.example", d.Web.Addr, port); got != "club.example" {
		t.Errorf("default port kept: %s", got)
	}
}
