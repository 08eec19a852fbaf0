package xmppd

import (
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/xmppd/mod/mam"
)

// The account message archive: XEP-0313 mam:2 with XEP-0359 stanza ids.
// Every message to a local account is committed to it before the
// sender's acknowledgement covers the message (mod/mam's package doc).
func init() {
	modules = append(modules, mam.Register)
}

// configureArchive applies the config's archive section (retention),
// read at start. An unreadable config keeps the default (30 days) and
// says so: the archive must not stop over it.
func (d *Daemon) configureArchive() {
	c, err := config.Load(d.opts.State.Config())
	if err != nil {
		d.opts.Log.Warn("archive: config unreadable, keeping messages for the default time", "err", err)
		c = config.Default()
	}
	mam.SetRetention(d.Server, c.Archive.Retention())
}
