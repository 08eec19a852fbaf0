package xmppd

import (
	"fmt"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/xmppd/mod/mam"
	"github.com/hearthchat/hearth/xmppd/mod/muc"
	"github.com/hearthchat/hearth/xmppd/mod/upload"
)

// applyRetention makes the running server take the config's archive
// section after the admin changed it on the health page: members'
// archives and rooms' archives (mam, muc) keep messages for its days,
// shared files (upload) for its file days, those already stored included.
// At start the same values are read by configureArchive,
// configureRoomArchives and startUpload.
func (d *Daemon) applyRetention() error {
	c, err := config.Load(d.opts.State.Config())
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	mam.SetRetention(d.Server, c.Archive.Retention())
	muc.SetRetention(d.Server, c.Archive.Retention())
	if u := upload.Of(d.Server); u != nil {
		u.SetExpiry(c.Archive.FileRetention())
	}
	return nil
}

// archiveConfig is the config's archive section, read at start (the
// default when the config cannot be read: configureArchive logs that).
func (d *Daemon) archiveConfig() config.Archive {
	c, err := config.Load(d.opts.State.Config())
	if err != nil {
		return config.DefaultArchive()
	}
	return c.Archive
}
