package xmppd

import (
	"github.com/hearthchat/hearth/xmppd/c2s"
	"github.com/hearthchat/hearth/xmppd/ws"
)

// mountWebSocket puts XMPP over WebSocket (xmppd/ws) on the web server,
// with the c2s connections' shaping, and lists it in host-meta (XEP-0156).
func (d *Daemon) mountWebSocket(cfg c2s.Config) {
	if d.Web == nil {
		return
	}
	h := ws.New(ws.Config{
		C2S: d.C2S, OwnHost: d.Web.OwnHost,
		ReadRate: cfg.ReadRate, ReadBurst: cfg.ReadBurst,
		Log: d.opts.Log,
	})
	d.Web.Handle(ws.Path, h)
	// A path: web makes it ws:// or wss:// on the name each client asked
	// for (a LAN client at http://hearth.local has no wss:// to reach).
	d.Web.AddLink("urn:xmpp:alt-connections:websocket", ws.Path)
}
