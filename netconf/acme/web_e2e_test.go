//go:build e2e

package acme

import (
	"fmt"
	"testing"
	"time"

	"github.com/hearthchat/hearth/netconf/status"
	"github.com/hearthchat/hearth/xmppd/web"
)

// TestHTTP01ThroughWeb is the box's arrangement: xmppd's web server owns
// the HTTP port and forwards /.well-known/acme-challenge/ to netconf's
// loopback challenge listener (before, certmagic tried to bind :80 itself
// and collided with xmppd).
func TestHTTP01ThroughWeb(t *testing.T) {
	dnsSrv := startDNS(t)
	p := startPebble(t, dnsSrv.Addr)
	st, _ := selfSignedState(t)
	inner := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	w, err := web.Start(web.Options{
		Addr:          fmt.Sprintf("127.0.0.1:%d", p.httpPort),
		Domain:        func() string { return domain },
		ACMEChallenge: inner,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var rec recorder
	m, err := New(Options{Domain: domain, Directory: p.dir, RootCAs: p.roots,
		Challenges: []Challenge{HTTP01}, HTTPAddr: inner,
		TLSAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		State:   st, Reporter: &rec, MinRetry: 200 * time.Millisecond, MaxRetry: time.Second, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, m)
	waitFor(t, 90*time.Second, "certificate", func() bool { return rec.cert().Level == status.OK })
	stop()
	checkInstalled(t, p, st, nil)
}
