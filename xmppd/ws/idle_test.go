package ws_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/ws"
)

// serverReaders counts the goroutines that read for a connection on the
// server's side: c2s's reader loop, or anything inside this package's
// connection (a reader blocked in a WebSocket read).
func serverReaders() (int, string) {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var sample string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "xmppd/c2s.(*conn).loop") || strings.Contains(g, "xmppd/ws.(*conn)") {
			n++
			if sample == "" {
				sample = g
			}
		}
	}
	return n, sample
}

// TestIdleSessionsHoldNoGoroutine: bound WebSocket sessions with nothing
// to read park on the poller like TCP ones; 200 of them hold no
// goroutine, and each still answers when a stanza arrives.
func TestIdleSessionsHoldNoGoroutine(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		d := start(t, nil)
		idleSessions(t, d, wsURL(d), 200)
	})
	// Over HTTPS the web server's TLS runs over idle.Conn (idle.Listener),
	// so these park too.
	t.Run("https", func(t *testing.T) {
		d := start(t, func(o *xmppd.Options) { o.WebTLS = "127.0.0.1:0" })
		idleSessions(t, d, "wss://"+d.Web.TLSAddr.String()+ws.Path, 100)
	})
}

func idleSessions(t *testing.T, d *xmppd.Daemon, url string, n int) {
	runtime.GC()
	before := runtime.NumGoroutine()
	xs := make([]*wsc, n)
	for i := range xs {
		// An account holds a few resources at most: one account each.
		user := fmt.Sprintf("idle%d", i)
		if err := d.Store.CreateAccount(user, "pw", false); err != nil {
			t.Fatal(err)
		}
		x := dial(t, url, nil)
		x.open(xmpptest.Domain)
		if el := x.auth("SCRAM-SHA-256", user, "pw"); el.Local != "success" {
			t.Fatalf("auth: %s", el)
		}
		x.open(xmpptest.Domain)
		x.bind("web")
		xs[i] = x
	}
	// Await the parking (each login's reader parks once it has read the
	// bind): no server reader left, or fail after 20 s.
	var readers int
	var sample string
	for deadline := time.Now().Add(20 * time.Second); ; {
		readers, sample = serverReaders()
		if readers == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	grown := runtime.NumGoroutine() - before
	t.Logf("%d idle WebSocket sessions: %d server readers, %d goroutines more than before", n, readers, grown)
	if readers > 0 {
		t.Fatalf("%d of %d idle WebSocket sessions hold a reader goroutine, e.g.:\n%s", readers, n, sample)
	}
	// The poller's worker and the like: a fixed few, not one a session.
	if grown > 10 {
		t.Fatalf("%d idle WebSocket sessions hold %d goroutines", n, grown)
	}
	// Parked, not dead: a stanza wakes each one (every tenth here).
	for i := 0; i < n; i += 10 {
		xs[i].send(fmt.Sprintf("<iq xmlns='jabber:client' type='get' id='p%d'><ping xmlns='urn:xmpp:ping'/></iq>", i))
		for {
			el := xs[i].el()
			if el.Local == "iq" {
				if el.Get("type") != "result" || el.Get("id") != fmt.Sprintf("p%d", i) {
					t.Fatalf("ping after parking: %s", el)
				}
				break
			}
		}
	}
}

// TestParkedNoPongShut: a bound session that parked and whose peer stops
// answering pings is shut down (woken on the poller, not left parked on a
// closed descriptor) and hibernates for resumption; a parked peer that
// answers stays.
func TestParkedNoPongShut(t *testing.T) {
	d := start(t, nil)
	h := ws.New(ws.Config{C2S: d.C2S, PingInterval: 300 * time.Millisecond, PongTimeout: 400 * time.Millisecond})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	alive := login(t, url, "alive")
	go func() {
		for {
			if _, _, err := alive.c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	silent := login(t, url, "silent")
	silent.send("<enable xmlns='" + nsSM + "' resume='true'/>")
	if en := silent.el(); en.Local != "enabled" {
		t.Fatalf("enable: %s", en)
	}
	// From here on the library never reads, so nothing answers pings.
	silent.raw.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.Copy(io.Discard, silent.raw); err != nil {
		t.Fatalf("silent parked peer not shut down: %v", err)
	}
	// Its session hibernates (XEP-0198), it was not closed on purpose.
	for deadline := time.Now().Add(10 * time.Second); ; {
		s := d.Server.Router.Session("alice", "silent")
		if s != nil && s.Detached() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the silent peer's session did not hibernate (session %v)", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := alive.c.Ping(ctx); err != nil {
		t.Fatalf("a parked peer that answers pings was closed too: %v", err)
	}
}
