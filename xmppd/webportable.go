package xmppd

// The web pages' account data (setup-ui/account_data.go): exports from
// the running server, and imports of new accounts into it — the admin's
// "bring members from a file" and a new member's file on the invite page.
// An import writes the store in one transaction (xmppd/portable) and then
// tells the modules that keep an account's state in memory
// (server.AccountImported: blocking's lists, mam's caches), so what was
// imported is in force at once, without a restart.

import (
	"errors"
	"io"
	"strings"

	bolt "go.etcd.io/bbolt"

	setupui "github.com/hearthchat/hearth/setup-ui"
	"github.com/hearthchat/hearth/xmppd/admin"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/portable"
	"github.com/hearthchat/hearth/xmppd/server"
)

// exportData writes users (every member when nil) from one read
// transaction.
func (d *Daemon) exportData(users []string, w io.Writer) error {
	if users == nil {
		var err error
		if users, err = people(d.Store); err != nil {
			return err
		}
	}
	return portable.Export(d.Store, d.Server.Domain, users, w)
}

// importData is the admin's import: new accounts only (portable refuses a
// name that exists, and then imports nothing).
func (d *Daemon) importData(r io.Reader) (setupui.ImportResult, error) {
	var rep *portable.Report
	var fileErr error
	err := d.Store.Update(func(tx *bolt.Tx) error {
		rep, fileErr = portable.ImportTx(d.Store, tx, d.Server.Domain, r, portable.Options{})
		return fileErr
	})
	if fileErr != nil {
		return setupui.ImportResult{}, importWords(fileErr)
	}
	if err != nil {
		return setupui.ImportResult{}, err
	}
	d.imported(rep)
	// They are new members as much as ones the admin API makes: the
	// members' room counts them and offers itself (muc, circlerooms.go).
	for _, u := range rep.Users {
		server.AccountRegistered.Fire(d.Server, server.Registration{User: u})
	}
	return importResult(rep), nil
}

// joinWithData registers user with the invite token and makes the account
// from data in the same transaction: a file that cannot be imported
// leaves neither an account nor a spent invite.
func (d *Daemon) joinWithData(token, user, password string, data io.Reader) (string, setupui.ImportResult, error) {
	u, err := admin.NormalizeUser(user)
	if err != nil || strings.HasPrefix(u, "_") {
		return "", setupui.ImportResult{}, setupui.ErrBadName
	}
	var rep *portable.Report
	var fileErr error
	inv, err := invites.RedeemWith(d.Store, token, u, password, func(tx *bolt.Tx) error {
		rep, fileErr = portable.ImportTx(d.Store, tx, d.Server.Domain, data, portable.Options{Into: u})
		return fileErr
	})
	if fileErr != nil {
		return "", setupui.ImportResult{}, importWords(fileErr)
	}
	if err != nil {
		return "", setupui.ImportResult{}, inviteErr(err)
	}
	d.opts.Log.Info("account registered with an invite on the web, with data from a file", "user", u, "inviter", inv.Inviter,
		"contacts", rep.Contacts, "archived", rep.Archived)
	d.imported(rep)
	// As for any registration: the roster module makes member and
	// inviter contacts.
	invites.Registered(d.Server, u, inv)
	return u, importResult(rep), nil
}

// imported tells the running modules of the accounts an import made.
func (d *Daemon) imported(rep *portable.Report) {
	for _, u := range rep.Users {
		server.AccountImported.Fire(d.Server, u)
	}
}

func importResult(rep *portable.Report) setupui.ImportResult {
	return setupui.ImportResult{Users: rep.Users, Contacts: rep.Contacts, Archived: rep.Archived, Skipped: len(rep.Skipped)}
}

// importWords turns portable's error into the page's words (its messages
// are written for people: "the document's accounts are on …", "anna@… :
// account exists on this server …").
func importWords(err error) error {
	msg := strings.TrimPrefix(err.Error(), "import: ")
	msg = strings.TrimSuffix(msg, " (nothing was imported)")
	msg = strings.TrimSuffix(msg, ": nothing was imported")
	if errors.Is(err, portable.ErrExists) {
		msg = strings.Replace(msg, "delete it first, or import under another name", "remove that member first, or take the account out of the file", 1)
	}
	if strings.HasPrefix(msg, "not an XEP-0227 document") {
		msg = "it is not an account file (XEP-0227); choose the file your old server exported"
	}
	if i := strings.Index(msg, ": if they move here, import with -map-domain"); i >= 0 {
		msg = msg[:i] + ": only accounts of this box's own domain can be imported here"
	}
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return &setupui.ImportError{Reason: msg}
}
