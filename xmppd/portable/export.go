// Package portable moves accounts between XMPP servers in the XEP-0227
// (v1.1, urn:xmpp:pie:0) format: Export writes accounts from the store as
// one document, Import reads one into the store. It is the only package
// that knows the file format; each module's storage is reached through its
// own transaction-level functions (portable.go in roster, vcard, private,
// pep, blocking, offline, mam and store).
//
// Both directions stream: an account's archive (up to 100,000 messages) is
// written record by record from one read transaction and read element by
// element, so memory does not grow with the document. Passwords are never
// written: the account's SCRAM verifiers go out as <scram-credentials/>
// (as Prosody writes them), one per hash.
package portable

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/mod/blocking"
	"github.com/hearthchat/hearth/xmppd/mod/mam"
	"github.com/hearthchat/hearth/xmppd/mod/offline"
	"github.com/hearthchat/hearth/xmppd/mod/pep"
	"github.com/hearthchat/hearth/xmppd/mod/private"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/mod/vcard"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// Namespaces of the format (XEP-0227 v1.1) and of what it carries.
const (
	NS        = "urn:xmpp:pie:0"
	NSOld     = "http://www.xmpp.org/extensions/xep-0227.html#ns" // v0.x, still read
	nsScram   = "urn:xmpp:pie:0#scram"
	nsMAMPie  = "urn:xmpp:pie:0#mam"
	nsRoster  = "jabber:iq:roster"
	nsPrivate = "jabber:iq:private"
	nsVCard   = "vcard-temp"
	nsPubsub  = "http://jabber.org/protocol/pubsub"
	nsOwner   = "http://jabber.org/protocol/pubsub#owner"
	nsBlock   = "urn:xmpp:blocking"
	nsMAM     = "urn:xmpp:mam:2"
	nsForward = "urn:xmpp:forward:0"
	nsDelay   = "urn:xmpp:delay"
	nsClient  = stream.NSClient
	nsSID     = "urn:xmpp:sid:0"
	nsPrivacy = "jabber:iq:privacy"
)

// Export writes users' accounts on domain as one XEP-0227 document to w,
// from one read transaction (a consistent snapshot).
func Export(st *store.Store, domain string, users []string, w io.Writer) error {
	return ExportWith(st, domain, users, w, ExportOptions{})
}

// ExportOptions adapt a document to an importing server's reading.
type ExportOptions struct {
	// Ejabberd writes the SCRAM values as ejabberd 23.01's
	// import_piefxis reads them: base64-encoded twice (it keeps them in
	// base64 and decodes what it imported once more at login; a document
	// in the XEP's form, as Prosody reads and writes it, imported there
	// crashes its SCRAM step with badarg).
	Ejabberd bool
}

// ExportWith is Export with options.
func ExportWith(st *store.Store, domain string, users []string, w io.Writer, o ExportOptions) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	err := st.View(func(tx *bolt.Tx) error {
		e := &exporter{w: bw, tx: tx, st: st, domain: domain, o: o}
		e.raw("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='" + NS + "'>\n")
		e.raw("<host jid='")
		e.esc(domain)
		e.raw("'>\n")
		for _, u := range users {
			if err := e.user(u); err != nil {
				return err
			}
		}
		e.raw("</host>\n</server-data>\n")
		return e.err
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return bw.Flush()
}

type exporter struct {
	w      *bufio.Writer
	tx     *bolt.Tx
	st     *store.Store
	domain string
	o      ExportOptions
	buf    []byte
	err    error
}

func (e *exporter) raw(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

func (e *exporter) bytes(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *exporter) esc(s string) {
	e.buf = stream.AppendEscaped(e.buf[:0], s, true)
	e.bytes(e.buf)
}

// el writes x (stored XML, serialized without a default namespace) as a
// child of an element whose default namespace is parentNS.
func (e *exporter) el(x *stream.Element, parentNS string) {
	e.buf = x.Append(e.buf[:0], parentNS)
	e.bytes(e.buf)
	e.raw("\n")
}

// stored parses stored XML to write it under parentNS: what is stored was
// serialized with no default namespace in scope.
func (e *exporter) stored(raw []byte, parentNS string) error {
	x, err := stream.ParseElement(raw)
	if err != nil {
		return err
	}
	e.el(x, parentNS)
	return nil
}

func (e *exporter) user(user string) error {
	a, err := store.AccountTx(e.tx, user)
	if err != nil {
		return err
	}
	if a == nil {
		return fmt.Errorf("%s: %w", user, store.ErrNotFound)
	}
	e.raw("<user name='")
	e.esc(user)
	e.raw("'>\n")
	b64 := base64.StdEncoding.EncodeToString
	if e.o.Ejabberd {
		b64 = func(b []byte) string {
			return base64.StdEncoding.EncodeToString([]byte(base64.StdEncoding.EncodeToString(b)))
		}
	}
	for _, k := range []struct {
		mech string
		keys store.ScramKeys
	}{{"SCRAM-SHA-1", a.SHA1}, {"SCRAM-SHA-256", a.SHA256}} {
		if len(k.keys.StoredKey) == 0 {
			continue
		}
		e.el(stream.New(nsScram, "scram-credentials", "mechanism", k.mech).Add(
			stream.New(nsScram, "server-key").AddText(b64(k.keys.ServerKey)),
			stream.New(nsScram, "stored-key").AddText(b64(k.keys.StoredKey)),
			stream.New(nsScram, "iter-count").AddText(strconv.Itoa(a.Iter)),
			stream.New(nsScram, "salt").AddText(b64(a.Salt))), NS)
	}

	// Roster: listed items in the roster query; requests the member has
	// not answered as the subscribe presences that made them (Prosody's
	// layout: <presence type='subscribe'/> children of <user/>).
	q := stream.New(nsRoster, "query")
	var pending []*stream.Element
	err = roster.EachTx(e.tx, user, func(it roster.Item) error {
		if it.Listed {
			q.Add(it.Element())
		}
		if it.PendingIn {
			p := stream.New(nsClient, "presence", "from", it.JID, "type", "subscribe")
			if len(it.Request) > 0 {
				if r, err := stream.ParseElement(it.Request); err == nil && r.Local == "presence" {
					r.Space = nsClient
					r.Set("from", it.JID)
					r.Set("type", "subscribe")
					p = r
				}
			}
			pending = append(pending, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(q.Nodes) > 0 {
		e.el(q, NS)
	}
	for _, p := range pending {
		e.el(p, NS)
	}

	if raw := vcard.GetTx(e.tx, user); raw != nil {
		if err := e.stored(raw, NS); err != nil {
			return fmt.Errorf("vcard of %s: %w", user, err)
		}
	}

	first := true
	err = private.EachTx(e.tx, user, func(raw []byte) error {
		if first {
			e.raw("<query xmlns='" + nsPrivate + "'>\n")
			first = false
		}
		return e.stored(raw, nsPrivate)
	})
	if err != nil {
		return fmt.Errorf("private storage of %s: %w", user, err)
	}
	if !first {
		e.raw("</query>\n")
	}

	if err := e.pep(user); err != nil {
		return fmt.Errorf("PEP of %s: %w", user, err)
	}

	if l := blocking.ListTx(e.tx, user); len(l) > 0 {
		bl := stream.New(nsBlock, "blocklist")
		for _, j := range l {
			bl.Add(stream.New(nsBlock, "item", "jid", j))
		}
		e.el(bl, NS)
	}

	first = true
	err = offline.EachTx(e.tx, user, func(raw []byte) error {
		if first {
			e.raw("<offline-messages>\n")
			first = false
		}
		return e.stored(raw, NS)
	})
	if err != nil {
		return fmt.Errorf("offline messages of %s: %w", user, err)
	}
	if !first {
		e.raw("</offline-messages>\n")
	}

	first = true
	err = mam.EachTx(e.tx, user, func(r mam.Record) error {
		if first {
			e.raw("<archive xmlns='" + nsMAMPie + "'>\n")
			first = false
		}
		e.raw("<result xmlns='" + nsMAM + "' id='" + mam.FormatID(r.ID) + "'><forwarded xmlns='" + nsForward +
			"'><delay xmlns='" + nsDelay + "' stamp='" + r.Time.Format("2006-01-02T15:04:05.000000Z") + "'/>")
		x, err := stream.ParseElement(r.XML)
		if err != nil {
			return err
		}
		if x.Space == "" {
			x.Space = nsClient
		}
		e.buf = x.Append(e.buf[:0], nsForward)
		e.bytes(e.buf)
		e.raw("</forwarded></result>\n")
		return e.err
	})
	if err != nil {
		return fmt.Errorf("archive of %s: %w", user, err)
	}
	if !first {
		e.raw("</archive>\n")
	}
	e.raw("</user>\n")
	return e.err
}

// pep writes the nodes' configurations (pubsub#owner) and their items
// (pubsub), Prosody's layout.
func (e *exporter) pep(user string) error {
	type node struct {
		name  string
		items [][]byte
	}
	owner := stream.New(nsOwner, "pubsub")
	var nodes []node
	err := pep.EachNodeTx(e.tx, user, func(name string, form *stream.Element, items [][]byte) error {
		form.Set("type", "submit")
		owner.Add(stream.New(nsOwner, "configure", "node", name).Add(form))
		nodes = append(nodes, node{name, items}) // raw values stay valid for the transaction
		return nil
	})
	if err != nil || len(nodes) == 0 {
		return err
	}
	e.el(owner, NS)
	e.raw("<pubsub xmlns='" + nsPubsub + "'>\n")
	for _, n := range nodes {
		e.raw("<items node='")
		e.esc(n.name)
		e.raw("'>\n")
		for _, raw := range n.items {
			if err := e.stored(raw, nsPubsub); err != nil {
				return err
			}
		}
		e.raw("</items>\n")
	}
	e.raw("</pubsub>\n")
	return e.err
}
