package xmppd

// The adapter through which the backup page and the wizard's restore
// (setup-ui/admin_backup.go, restore.go) make and stage whole-box backups
// (appliance/backup).

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hearthchat/hearth/appliance/backup"
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/usbstick"
	"github.com/hearthchat/hearth/appliance/version"
	setupui "github.com/hearthchat/hearth/setup-ui"
)

type webBackup struct{ d *Daemon }

func (b webBackup) Name() string { return backup.FileName(b.d.Server.Domain, time.Now()) }

func (b webBackup) source() backup.Source {
	return backup.Source{Dir: b.d.opts.State, Domain: b.d.Server.Domain, Version: version.Version,
		DB: func(w io.Writer) error { _, err := b.d.Store.Backup(w); return err }}
}

func (b webBackup) Write(w io.Writer, passphrase string) error {
	_, err := backup.Write(w, b.source(), passphrase)
	return err
}

func (b webBackup) Stage(r io.Reader, passphrase string) (string, error) {
	m, err := backup.Stage(b.d.opts.State, r, passphrase)
	if err != nil {
		return "", err
	}
	return backup.Describe(m), nil
}

// Apply asks cmd/xmppd to shut down and start again (Options.Restart);
// the new process puts the staged backup in place before it opens the
// state. The graceful shutdown lets the page that called this finish.
func (b webBackup) Apply() bool {
	if b.d.opts.Restart == nil {
		return false
	}
	b.d.opts.Restart()
	return true
}

func (b webBackup) nightly(s backup.Status, hasPass bool) setupui.Nightly {
	n := setupui.Nightly{HasPassphrase: hasPass, Attempt: s.Attempt, OK: s.OK, File: s.File, Bytes: s.Bytes, Copies: s.Copies, Error: s.Error}
	if c, err := config.Load(b.d.opts.State.Config()); err == nil && c.Backup.Dir == backup.USB {
		n.Stick = backup.StickNow()
		if s.Stick != "" && s.Free > 0 {
			n.OnStick = fmt.Sprintf("on %s, %s free after it", s.Stick, usbstick.Bytes(s.Free))
		}
	}
	return n
}

func (b webBackup) hasPassphrase() bool {
	_, err := os.Stat(backup.PassphraseFile(b.d.opts.State))
	return err == nil
}

func (b webBackup) Nightly() setupui.Nightly {
	return b.nightly(backup.ReadStatus(b.d.opts.State), b.hasPassphrase())
}

func (b webBackup) SetPassphrase(pw string) error { return backup.SavePassphrase(b.d.opts.State, pw) }

func (b webBackup) RunNightly() setupui.Nightly {
	return b.nightly(backup.RunOnce(b.source()), b.hasPassphrase())
}
