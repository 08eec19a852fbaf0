package xmppd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hearthchat/hearth/xmppd/client"
	"github.com/hearthchat/hearth/xmppd/store"
)

// HealthUser is the account the health check logs in with. Its password is
// random and replaced at every start, so it is never known outside this
// process.
const HealthUser = "_health"

func (d *Daemon) healthPassword() (string, error) {
	if d.healthPass != "" {
		return d.healthPass, nil
	}
	b := make([]byte, 24)
	rand.Read(b)
	pw := base64.RawURLEncoding.EncodeToString(b)
	err := d.Store.SetPassword(HealthUser, pw)
	if errors.Is(err, store.ErrNotFound) {
		err = d.Store.CreateAccount(HealthUser, pw, false)
	}
	if err != nil {
		return "", err
	}
	d.healthPass = pw
	return pw, nil
}

// loginCheck proves that a client can log in: a real TLS connection to our
// own listener, SCRAM-SHA-256 and a resource bind, as an app would.
func (d *Daemon) loginCheck(ctx context.Context) error {
	addr, direct := d.C2STLSAddr, true
	if addr == nil {
		addr, direct = d.C2SAddr, false
	}
	if addr == nil {
		return errors.New("no c2s listener")
	}
	pw, err := d.healthPassword()
	if err != nil {
		return fmt.Errorf("health account: %w", err)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(10 * time.Second)
	}
	host := "127.0.0.1"
	if ta, ok := addr.(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
		host = ta.IP.String()
	}
	_, port, _ := net.SplitHostPort(addr.String())
	// The one login client (xmppd/client), as the bench and the tests use.
	// Our own certificate may be self-made: what is checked here is that
	// a login works, not the certificate (netconf reports on that).
	c, err := client.Dial(ctx, client.Config{
		Addr: net.JoinHostPort(host, port), Domain: d.Server.Domain,
		User: HealthUser, Password: pw, DirectTLS: direct,
		TLS:       &tls.Config{InsecureSkipVerify: true, ServerName: d.Server.Domain},
		Mechanism: client.ScramSHA256, Timeout: time.Until(dl),
	})
	if err != nil {
		return err
	}
	c.Close() // logged in and bound: that was the check
	return nil
}
