package xmppd

import (
	"fmt"
	"net"
	"path/filepath"

	"github.com/hearthchat/hearth/xmppd/mod/socks5"
)

// startProxy runs the XEP-0065 bytestreams proxy at proxy.<domain> on
// Options.Proxy65, advertised at the same host as the TURN server (the
// domain, or the LAN address on a home-only box).
func (d *Daemon) startProxy() error {
	if d.opts.Proxy65 == "" {
		return nil
	}
	ln, err := net.Listen("tcp", d.opts.Proxy65)
	if err != nil {
		return fmt.Errorf("bytestreams proxy: %w", err)
	}
	addrs := &boxAddrs{status: filepath.Join(d.opts.State.Status(), "netconf.json")}
	host := func() string {
		if h := d.opts.TURN.Host; h != "" {
			return h
		}
		return addrs.host(d.Server.Domain)
	}
	d.Proxy = socks5.Serve(d.Server, socks5.Config{Listener: ln, Host: host, Log: d.opts.Log})
	d.opts.Log.Info("file transfer proxy: listening", "jid", "proxy."+d.Server.Domain, "addr", ln.Addr())
	return nil
}
