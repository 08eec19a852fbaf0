package xmppd

import (
	"fmt"

	"github.com/hearthchat/hearth/xmppd/store"
)

// openStore opens the database and, when enough of the file is free space
// (expired archives, deleted members), compacts it first: bbolt never
// returns space to the file system by itself, and on the box that space is
// the SD card's (store/compact.go says when it is worth it). Only here, at
// start, before any writer exists: the copy cannot miss a write, and the
// starting page says what the box is doing while it runs.
func (d *Daemon) openStore() (*store.Store, error) {
	path := d.opts.State.DB()
	if err := store.RemoveCompactLeftover(path); err != nil {
		return nil, err
	}
	st, err := store.Open(path)
	if err != nil || !st.WorthCompacting() {
		return st, err
	}
	if d.Web != nil {
		d.Web.Waiting("the chat's storage to be tidied up (this happens rarely and can take a few minutes)")
	}
	free := st.FreeBytes()
	if err := st.Close(); err != nil {
		return nil, fmt.Errorf("close storage before compacting: %w", err)
	}
	c, err := store.CompactFile(path)
	if err != nil {
		// The old file is in place and whole: carry on with it.
		d.opts.Log.Warn("storage compaction failed; the old file is kept", "free", free, "err", err)
	} else {
		d.opts.Log.Info("storage compacted", "before", c.Before, "after", c.After, "took", c.Took)
	}
	return store.Open(path)
}
