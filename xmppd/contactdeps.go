package xmppd

import (
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/xmppd/mod/contact"
)

// configureContact gives the XEP-0157 form the abuse addresses of the
// box's config (config.Site.Abuse), read again whenever the form is
// rebuilt so that an edit shows without a restart; without any, the
// contact module names the admins.
func (d *Daemon) configureContact() {
	path := d.opts.State.Config()
	log := d.opts.Log
	contact.SetAbuse(d.Server, func() []string {
		c, err := config.Load(path)
		if err != nil {
			log.Warn("contact: config unreadable; abuse reports go to the admins", "err", err)
			return nil
		}
		return c.Site.Abuse
	})
}
