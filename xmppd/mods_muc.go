package xmppd

import (
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/xmppd/mod/muc"
)

// Group chat: XEP-0045 rooms on groups.<domain> with their archive
// (XEP-0313 on the room), occupant-id and self-ping.
func init() {
	modules = append(modules, muc.Register)
}

// configureRoomArchives gives room archives the config's archive retention
// (each room's owner may set another in the room's form). Read at start,
// like the members' archives' (configureArchive).
func (d *Daemon) configureRoomArchives() {
	c, err := config.Load(d.opts.State.Config())
	if err != nil {
		c = config.Default() // configureArchive has said so in the log
	}
	muc.SetRetention(d.Server, c.Archive.Retention())
}
