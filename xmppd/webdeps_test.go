package xmppd

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/client"
	"github.com/hearthchat/hearth/xmppd/store"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The web port answers while storage is still opening (here: held by
// another process's lock), with the starting page; then the real pages.
func TestWebAnswersBeforeStorage(t *testing.T) {
	dir := state.Dir(t.TempDir())
	dir.Ensure()
	held, err := store.Open(dir.DB())
	if err != nil {
		t.Fatal(err)
	}
	web := freeAddr(t)
	started := make(chan *Daemon, 1)
	go func() {
		d, err := Start(Options{State: dir, Domain: "hearth.localhost", C2S: "127.0.0.1:0", Web: web, Dev: true})
		if err != nil {
			t.Error(err)
		}
		started <- d
	}()
	var body string
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp, err := http.Get("http://" + web + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("while storage is locked: %d %s", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web port not answering while storage opens: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(body, "Waiting for its storage to open") {
		t.Errorf("starting page: %s", body)
	}
	held.Close()
	d := <-started
	if d == nil {
		t.FailNow()
	}
	defer d.Shutdown(context.Background())
	resp, err := http.Get("http://" + web + "/setup")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("setup page after start: %d", resp.StatusCode)
	}
	if d.SetupCode == "" {
		t.Error("no setup code made on a box without one")
	}
}

func login(t *testing.T, d *Daemon, user, pw string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		Addr: d.C2SAddr.String(), Domain: d.Server.Domain, User: user, Password: pw,
		TLS:       &tls.Config{InsecureSkipVerify: true, ServerName: d.Server.Domain},
		Mechanism: client.ScramSHA256, Timeout: 10 * time.Second,
	})
	if err == nil {
		c.Close()
	}
	return err
}

// Before the box is claimed nobody logs in but the health check; after,
// everyone with an account.
func TestLoginsWaitForClaim(t *testing.T) {
	dir := state.Dir(t.TempDir())
	d, err := Start(Options{State: dir, Domain: "hearth.localhost", C2S: "127.0.0.1:0", Web: freeAddr(t), RequireClaim: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	if err := d.Store.CreateAccount("bob", "bob-password", false); err != nil {
		t.Fatal(err)
	}
	if err := login(t, d, "bob", "bob-password"); err == nil {
		t.Fatal("bob logged in before the box was claimed")
	}
	if err := d.LoginCheck(context.Background()); err != nil {
		t.Fatalf("health check's login before claim: %v", err)
	}
	cfg := config.Default()
	cfg.Claimed = true
	if err := config.Save(dir.Config(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := login(t, d, "bob", "bob-password"); err != nil {
		t.Fatalf("after claim: %v", err)
	}
	// Without RequireClaim (tests, benchmarks, make run) there is no
	// gate, web server or not.
	d2, err := Start(Options{State: state.Dir(t.TempDir()), Domain: "hearth.localhost", C2S: "127.0.0.1:0", Web: freeAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Shutdown(context.Background())
	d2.Store.CreateAccount("bob", "bob-password", false)
	if err := login(t, d2, "bob", "bob-password"); err != nil {
		t.Fatalf("no web server: %v", err)
	}
}

// HTTPS serves the box's certificate (loaded after the listener bound).
func TestWebHTTPS(t *testing.T) {
	d, err := Start(Options{State: state.Dir(t.TempDir()), Domain: "hearth.localhost", C2S: "127.0.0.1:0", Web: freeAddr(t), WebTLS: freeAddr(t), Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 5 * time.Second}
	resp, err := c.Get("https://" + d.Web.TLSAddr.String() + "/setup")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatalf("https: %d %v", resp.StatusCode, resp.TLS)
	}
	if !strings.Contains(resp.Header.Get("Set-Cookie"), "Secure") {
		t.Errorf("session cookie over HTTPS without Secure: %q", resp.Header.Get("Set-Cookie"))
	}
	if d.fingerprint() == "" || d.publicCert() {
		t.Errorf("fingerprint %q, public %v (self-signed)", d.fingerprint(), d.publicCert())
	}
}
