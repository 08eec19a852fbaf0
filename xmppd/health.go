package xmppd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	msasl "mellium.im/sasl"

	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
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
	raw, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), time.Until(dl))
	if err != nil {
		return err
	}
	defer raw.Close()
	raw.SetDeadline(dl)
	tcfg := &tls.Config{InsecureSkipVerify: true, ServerName: d.Server.Domain}
	var c net.Conn = raw
	var p *stream.Parser
	open := func() (*stream.Element, error) {
		fmt.Fprintf(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' to='%s' version='1.0'>", stream.NSStream, d.Server.Domain)
		if ev, err := p.Next(); err != nil || ev.Kind != stream.Open {
			return nil, fmt.Errorf("stream header: %v", err)
		}
		ev, err := p.Next()
		if err != nil || ev.El.Local != "features" {
			return nil, fmt.Errorf("stream features: %v", err)
		}
		return ev.El, nil
	}
	next := func() (*stream.Element, error) {
		ev, err := p.Next()
		if err != nil {
			return nil, err
		}
		if ev.Kind != stream.Stanza {
			return nil, errors.New("stream closed")
		}
		return ev.El, nil
	}
	if direct {
		t := tls.Client(raw, tcfg)
		c = t
	}
	p = stream.NewParser(c, stream.PostAuthLimits)
	if _, err := open(); err != nil {
		return err
	}
	if !direct {
		fmt.Fprint(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
		if el, err := next(); err != nil || el.Local != "proceed" {
			return fmt.Errorf("starttls: %v", err)
		}
		c = tls.Client(raw, tcfg)
		p = stream.NewParser(c, stream.PostAuthLimits)
		if _, err := open(); err != nil {
			return err
		}
	}
	cl := msasl.NewClient(msasl.ScramSha256, msasl.Credentials(func() ([]byte, []byte, []byte) {
		return []byte(HealthUser), []byte(pw), nil
	}))
	_, resp, err := cl.Step(nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>%s</auth>", base64.StdEncoding.EncodeToString(resp))
	for {
		el, err := next()
		if err != nil {
			return fmt.Errorf("sasl: %w", err)
		}
		data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(el.Text()))
		switch el.Local {
		case "challenge":
			if _, resp, err = cl.Step(data); err != nil {
				return fmt.Errorf("sasl: %w", err)
			}
			fmt.Fprintf(c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>", base64.StdEncoding.EncodeToString(resp))
			continue
		case "success":
			if _, _, err = cl.Step(data); err != nil {
				return fmt.Errorf("sasl: server signature: %w", err)
			}
		default:
			return fmt.Errorf("sasl: %s", el)
		}
		break
	}
	p.Restart()
	if _, err := open(); err != nil {
		return err
	}
	fmt.Fprint(c, "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
	el, err := next()
	if err != nil || el.Get("type") != "result" {
		return fmt.Errorf("bind: %v %v", el, err)
	}
	fmt.Fprint(c, "</stream:stream>")
	return nil
}
