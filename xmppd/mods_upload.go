package xmppd

import (
	"net"

	"github.com/hearthchat/hearth/xmppd/mod/upload"
)

// startUpload runs XEP-0363 HTTP upload on upload.<domain>: files under
// STATE/uploads, PUT and served by the one web server at /upload/. It is
// not in the modules list (mods.go) because it needs the daemon's state
// directory and web server; without a web server there is nowhere to PUT,
// so no service is offered.
func (d *Daemon) startUpload() error {
	if d.Web == nil {
		return nil
	}
	u, err := upload.Register(d.Server, upload.Options{
		Dir:     d.opts.State.Uploads(),
		BaseURL: d.uploadBase,
		Expiry:  d.archiveConfig().FileRetention(), // retention.go
		Log:     d.opts.Log,
	})
	if err != nil {
		return err
	}
	d.Web.HandleStream(upload.Prefix, u.Handler())
	return nil
}

// stopUpload stops the expiry timer before storage closes.
func (d *Daemon) stopUpload() {
	if d.Server == nil {
		return
	}
	if u := upload.Of(d.Server); u != nil {
		u.Close()
	}
}

// uploadBase is where members' phones reach the web server, asked for
// each slot. The URL goes into a chat message that other members open,
// maybe from elsewhere: so the chat's domain (which the Host allowlist
// accepts, and which is hearth.local on a box without a domain of its
// own), over HTTPS only once the certificate is one phones trust (a
// self-signed one would make every download fail), else plain HTTP on
// the web port. On a laptop (-dev) the listener's loopback address, since
// nothing resolves the dev domain hearth.localhost for command-line
// clients.
func (d *Daemon) uploadBase() string {
	if d.publicCert() && d.Web.TLSAddr != nil {
		return "https://" + hostPort(d.Server.Domain, d.Web.TLSAddr, "443")
	}
	if d.opts.Dev {
		return "http://" + d.Web.Addr.String()
	}
	return "http://" + hostPort(d.Server.Domain, d.Web.Addr, "80")
}

// hostPort is host with the listener's port unless it is the default.
func hostPort(host string, a net.Addr, def string) string {
	_, port, err := net.SplitHostPort(a.String())
	if err != nil || port == def {
		return host
	}
	return net.JoinHostPort(host, port)
}
