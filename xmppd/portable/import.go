package portable

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"mellium.im/xmpp/jid"

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

// DefaultMaxBytes bounds an imported document. An account's archive is
// capped at 64 MiB stored (mod/mam); in the document each message gains
// its <result/>, <forwarded/> and <delay/> wrapping, about 250 bytes.
const DefaultMaxBytes = 256 << 20

// Limits on one element read whole (a roster, a vCard, a PEP node's items,
// one archived message). The largest legitimate one is a roster of 1,000
// contacts (a few hundred KiB) or PEP's 8 MiB of items.
const (
	maxUnitBytes = 16 << 20
	maxDepth     = 32
)

// Options steer Import.
type Options struct {
	// MapDomain, when set, is the domain of the document's <host/> to
	// import into this server's domain (a member moving from another
	// server). Without it only a host equal to the server's domain is
	// imported: a document naming another domain's users is refused.
	MapDomain string
	// MaxBytes bounds the document (DefaultMaxBytes when 0), the files
	// it includes counted in.
	MaxBytes int64
	// Include opens the file an <xi:include href='…'/> names (XEP-0227
	// §5: a document split into a file per host and per user, as
	// ejabberd's export_piefxis writes it). Nil refuses split documents.
	// The caller decides which hrefs are acceptable (cmd/xmppd: relative
	// paths below the document's directory).
	Include func(href string) (io.ReadCloser, error)
	// Into, when set, is an account the caller created in the same
	// transaction (ImportTx) just before: a new member registering with
	// an invite brings their data. The document must hold exactly one
	// account; its user name and its host, whatever they are, are mapped
	// to Into on this server, and its credentials are ignored (the member
	// chose a new password when registering).
	Into string
}

// nsXInclude is the XInclude namespace.
const nsXInclude = "http://www.w3.org/2001/XInclude"

// maxIncludes bounds the files one import opens (one per host and one
// per account).
const maxIncludes = 10_000

// Report says what an import stored.
type Report struct {
	Users                                                             []string
	Contacts, Private, PEPNodes, PEPItems, Blocked, Offline, Archived int
	VCards                                                            int
	Skipped                                                           []string // data the importer did not understand (XEP-0227 §3: ignored, told)
}

// ErrExists is wrapped by Import when the document names an account the
// server has.
var ErrExists = errors.New("account exists")

// Import reads one XEP-0227 document from r into st for domain. It is all
// or nothing: everything is written in one transaction, and any error
// (malformed XML, a DTD or entity, a document over the size limit, another
// domain's host, an account that exists, data over a module's limit)
// leaves the store as it was. Modules keep some state (block lists) in
// memory from their start: a running server's modules must be told of
// each imported account with server.AccountImported after the commit
// (xmppd/webportable.go does).
func Import(st *store.Store, domain string, r io.Reader, o Options) (*Report, error) {
	var rep *Report
	err := st.Update(func(tx *bolt.Tx) error {
		var err error
		rep, err = ImportTx(st, tx, domain, r, o)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// ImportTx is Import inside a caller's write transaction (an invite's
// registration and the member's data commit together, Options.Into). An
// error leaves the caller to roll the transaction back.
func ImportTx(st *store.Store, tx *bolt.Tx, domain string, r io.Reader, o Options) (*Report, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	b := &budget{n: o.MaxBytes}
	rep := &Report{}
	im := &importer{d: newDecoder(r, b), b: b, tx: tx, st: st, domain: domain, o: o, rep: rep, seen: map[string]bool{}}
	err := im.document()
	if b.over {
		return nil, fmt.Errorf("import: the document is larger than %d bytes: nothing was imported", o.MaxBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("import: %w (nothing was imported)", err)
	}
	return rep, nil
}

func newDecoder(r io.Reader, b *budget) *xml.Decoder {
	d := xml.NewDecoder(&limitReader{r: r, b: b})
	d.Strict = true
	// encoding/xml knows only the five predefined entities and never reads
	// a DTD; a document that declares any (an entity bomb needs them) is
	// refused at its <!DOCTYPE> (next, element), before anything is
	// expanded.
	d.Entity = nil
	return d
}

// budget is what is left of the size limit, shared by a document and the
// files it includes.
type budget struct {
	n        int64
	over     bool
	includes int
}

// limitReader fails reading past the budget (io.LimitReader would end the
// document quietly and let a truncated one look merely malformed).
type limitReader struct {
	r io.Reader
	b *budget
}

func (l *limitReader) Read(p []byte) (int, error) {
	// One byte past the limit is read, to tell "at the limit" from "past it".
	if int64(len(p)) > l.b.n+1 {
		p = p[:l.b.n+1]
	}
	n, err := l.r.Read(p)
	l.b.n -= int64(n)
	if l.b.n < 0 {
		l.b.over = true
		return 0, errors.New("document too large")
	}
	return n, err
}

type importer struct {
	d      *xml.Decoder
	b      *budget
	tx     *bolt.Tx
	st     *store.Store
	domain string
	o      Options
	rep    *Report
	seen   map[string]bool
}

// next returns the next start or end element, skipping character data
// between elements, comments and the XML declaration, and refusing DTDs
// and other processing instructions.
func (im *importer) next() (xml.Token, error) {
	for {
		t, err := im.d.Token()
		if err != nil {
			if err == io.EOF {
				return nil, errors.New("the document ends before </server-data>")
			}
			return nil, fmt.Errorf("malformed XML (line %d): %w", im.line(), err)
		}
		switch t := t.(type) {
		case xml.StartElement, xml.EndElement:
			return t, nil
		case xml.Directive:
			return nil, fmt.Errorf("line %d: DTDs and entity declarations are not accepted", im.line())
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, fmt.Errorf("line %d: processing instruction <?%s?> not accepted", im.line(), t.Target)
			}
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, fmt.Errorf("line %d: unexpected text", im.line())
			}
		}
	}
}

func (im *importer) line() int { l, _ := im.d.InputPos(); return l }

func isRoot(n xml.Name) bool { return n.Local == "server-data" && (n.Space == NS || n.Space == NSOld) }

func (im *importer) document() error {
	t, err := im.next()
	if err != nil {
		return err
	}
	s, ok := t.(xml.StartElement)
	if !ok || !isRoot(s.Name) {
		return errors.New("not an XEP-0227 document: the root is not <server-data xmlns='" + NS + "'>")
	}
	for {
		t, err := im.next()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.EndElement:
			for {
				tt, err := im.d.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("malformed XML after </server-data>: %w", err)
				}
				switch tt := tt.(type) {
				case xml.Comment:
					continue
				case xml.CharData:
					if strings.TrimSpace(string(tt)) == "" {
						continue
					}
				}
				return errors.New("content after </server-data>")
			}
			if len(im.rep.Users) == 0 {
				return errors.New("the document holds no account")
			}
			return nil
		case xml.StartElement:
			if t.Name.Local == "host" && (t.Name.Space == NS || t.Name.Space == NSOld) {
				if err := im.host(t); err != nil {
					return err
				}
				continue
			}
			if t.Name.Space == nsXInclude && t.Name.Local == "include" {
				if err := im.include(t, ""); err != nil {
					return err
				}
				continue
			}
			im.rep.Skipped = append(im.rep.Skipped, "<"+t.Name.Local+" xmlns='"+t.Name.Space+"'> under <server-data/>")
			if err := im.d.Skip(); err != nil {
				return fmt.Errorf("malformed XML: %w", err)
			}
		}
	}
}

// include reads the file an <xi:include/> names: a <host/> file (under
// <server-data/>, host "") or a <user/> file (under the <host/> named
// host). Only the plain form XEP-0227 requires: href, no parse, no
// xpointer.
func (im *importer) include(s xml.StartElement, host string) error {
	href := attr(s, "href")
	if im.o.Include == nil {
		return fmt.Errorf("line %d: the document includes %q (XInclude): import it from its file, not a stream", im.line(), href)
	}
	if href == "" || attr(s, "parse") != "" || attr(s, "xpointer") != "" {
		return fmt.Errorf("line %d: only <xi:include href='…'/> without parse or xpointer is supported", im.line())
	}
	if err := im.d.Skip(); err != nil {
		return fmt.Errorf("malformed XML: %w", err)
	}
	if im.b.includes++; im.b.includes > maxIncludes {
		return fmt.Errorf("more than %d included files", maxIncludes)
	}
	f, err := im.o.Include(href)
	if err != nil {
		return fmt.Errorf("include %q: %w", href, err)
	}
	defer f.Close()
	sub := *im
	sub.d = newDecoder(f, im.b)
	t, err := sub.next()
	if err != nil {
		return fmt.Errorf("include %q: %w", href, err)
	}
	root, ok := t.(xml.StartElement)
	switch {
	case ok && host == "" && root.Name.Local == "host" && (root.Name.Space == NS || root.Name.Space == NSOld):
		err = sub.host(root)
	case ok && host != "" && root.Name.Local == "user" && (root.Name.Space == NS || root.Name.Space == NSOld):
		err = sub.user(root, host)
	default:
		return fmt.Errorf("include %q: not a <host/> or <user/> file where one belongs", href)
	}
	if err != nil {
		return fmt.Errorf("include %q: %w", href, err)
	}
	return nil
}

func attr(s xml.StartElement, name string) string {
	for _, a := range s.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (im *importer) host(s xml.StartElement) error {
	h := attr(s, "jid")
	switch {
	case im.o.Into != "": // the member's old server, whichever it was
	case h == im.domain:
	case im.o.MapDomain != "" && h == im.o.MapDomain:
	case im.o.MapDomain != "":
		return fmt.Errorf("the document's host %q is neither this server's domain %q nor the one to map (%q)", h, im.domain, im.o.MapDomain)
	default:
		return fmt.Errorf("the document's accounts are on %q, this server is %q: if they move here, import with -map-domain %s", h, im.domain, h)
	}
	for {
		t, err := im.next()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name.Local == "user" && t.Name.Space == s.Name.Space {
				if err := im.user(t, h); err != nil {
					return err
				}
				continue
			}
			if t.Name.Space == nsXInclude && t.Name.Local == "include" {
				if err := im.include(t, h); err != nil {
					return err
				}
				continue
			}
			im.rep.Skipped = append(im.rep.Skipped, "<"+t.Name.Local+" xmlns='"+t.Name.Space+"'> under <host/>")
			if err := im.d.Skip(); err != nil {
				return fmt.Errorf("malformed XML: %w", err)
			}
		}
	}
}

// normalize prepares a localpart (RFC 7622 UsernameCaseMapped).
func normalize(name string) (string, error) {
	j, err := jid.New(name, "localhost", "")
	if err != nil || j.Localpart() == "" {
		return "", fmt.Errorf("invalid user name %q", name)
	}
	return j.Localpart(), nil
}

// userImport is what one <user/> brings in before its account is written.
type userImport struct {
	name    string
	bare    []string // the account's bare JIDs in the document (its host, and this domain)
	acct    *store.Account
	hasKeys bool
	lastID  uint64
	roster  map[string]*roster.Item
	order   []string
	into    bool // Options.Into: the account exists, credentials are ignored
}

func (im *importer) user(s xml.StartElement, host string) error {
	name, err := normalize(attr(s, "name"))
	if err != nil {
		return err
	}
	if im.o.Into != "" {
		return im.userInto(s, name, host)
	}
	if strings.HasPrefix(name, "_") {
		// The box's own accounts ("_health") start with "_"; the admin
		// pages hide them, so an imported one would be invisible.
		return fmt.Errorf("account name %q: names beginning with _ are the server's own", name)
	}
	if im.seen[name] {
		return fmt.Errorf("account %s appears twice in the document", name)
	}
	im.seen[name] = true
	if a, err := store.AccountTx(im.tx, name); err != nil {
		return err
	} else if a != nil {
		return fmt.Errorf("%s@%s: %w on this server: delete it first, or import under another name", name, im.domain, ErrExists)
	}
	u := &userImport{name: name, bare: []string{name + "@" + host, name + "@" + im.domain}, roster: map[string]*roster.Item{}}
	if pw := attr(s, "password"); pw != "" {
		// A plain password (Prosody's internal_plain, old exports): only
		// its SCRAM verifiers are kept.
		if u.acct, err = store.NewAccountRecord(pw); err != nil {
			return err
		}
		u.hasKeys = true
	}
	for {
		t, err := im.next()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.EndElement:
			return im.finishUser(u)
		case xml.StartElement:
			if err := im.userChild(u, t); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
}

// userInto reads the document's one account into Options.Into, which the
// caller created in this transaction: credentials and the document's
// name are not used, except to recognise the account's own messages.
func (im *importer) userInto(s xml.StartElement, old, host string) error {
	if len(im.seen) > 0 {
		return errors.New("the file holds more than one account: bring one account's file")
	}
	im.seen[im.o.Into] = true
	if a, err := store.AccountTx(im.tx, im.o.Into); err != nil {
		return err
	} else if a == nil {
		return fmt.Errorf("%s: %w", im.o.Into, store.ErrNotFound)
	}
	u := &userImport{name: im.o.Into, bare: []string{old + "@" + host, im.o.Into + "@" + im.domain}, roster: map[string]*roster.Item{}, into: true}
	for {
		t, err := im.next()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.EndElement:
			return im.finishUser(u)
		case xml.StartElement:
			if err := im.userChild(u, t); err != nil {
				return err
			}
		}
	}
}

func (im *importer) userChild(u *userImport, s xml.StartElement) error {
	switch {
	case s.Name.Space == nsMAMPie && s.Name.Local == "archive":
		return im.archive(u)
	case s.Name.Local == "offline-messages" && (s.Name.Space == NS || s.Name.Space == NSOld):
		return im.offline(u)
	}
	el, err := im.element(s)
	if err != nil {
		return err
	}
	switch {
	case el.Space == nsScram && el.Local == "scram-credentials":
		if u.into {
			return nil // the member chose a new password
		}
		return im.scram(u, el)
	case el.Space == nsRoster && el.Local == "query":
		for _, it := range el.Children() {
			if it.Space != nsRoster || it.Local != "item" {
				continue
			}
			c, err := bareJID(it.Get("jid"))
			if err != nil {
				return fmt.Errorf("roster: %w", err)
			}
			r := u.item(c)
			r.Listed = true
			r.Name = it.Get("name")
			r.Groups = nil
			for _, g := range it.Children() {
				if g.Space == nsRoster && g.Local == "group" && g.Text() != "" {
					r.Groups = append(r.Groups, g.Text())
				}
			}
			switch it.Get("subscription") {
			case "both":
				r.Sub = roster.Both
			case "to":
				r.Sub = roster.To
			case "from":
				r.Sub = roster.From
			default:
				r.Sub = roster.None
			}
			r.Ask = it.Get("ask") == "subscribe"
			r.Approved = it.Get("approved") == "true" || it.Get("approved") == "1"
		}
	case el.Space == nsClient && el.Local == "presence" && el.Get("type") == "subscribe":
		c, err := bareJID(el.Get("from"))
		if err != nil {
			return fmt.Errorf("pending subscription request: %w", err)
		}
		r := u.item(c)
		r.PendingIn = true
		r.Request = el.Append(nil, "")
	case el.Space == nsVCard && el.Local == "vCard":
		if err := vcard.PutTx(im.tx, u.name, el); err != nil {
			return err
		}
		im.rep.VCards++
	case el.Space == nsPrivate && el.Local == "query":
		for _, c := range el.Children() {
			if err := private.PutTx(im.tx, u.name, c); err != nil {
				return fmt.Errorf("private storage: %w", err)
			}
			im.rep.Private++
		}
	case el.Space == nsOwner && el.Local == "pubsub":
		for _, c := range el.Children() {
			if c.Local != "configure" || c.Get("node") == "" {
				continue
			}
			skipped, err := pep.ImportNodeTx(im.tx, u.name, c.Get("node"), c.Child("jabber:x:data", "x"), nil)
			if err != nil {
				return err
			}
			for _, f := range skipped {
				im.rep.Skipped = append(im.rep.Skipped, "PEP node "+c.Get("node")+": option "+f)
			}
		}
	case el.Space == nsPubsub && el.Local == "pubsub":
		for _, c := range el.Children() {
			if c.Local != "items" || c.Get("node") == "" {
				continue
			}
			var items []*stream.Element
			for _, it := range c.Children() {
				if it.Local == "item" {
					items = append(items, it)
				}
			}
			if _, err := pep.ImportNodeTx(im.tx, u.name, c.Get("node"), nil, items); err != nil {
				return err
			}
			im.rep.PEPNodes++
			im.rep.PEPItems += len(items)
		}
	case el.Space == nsBlock && el.Local == "blocklist":
		for _, it := range el.Children() {
			if j := it.Get("jid"); it.Local == "item" && j != "" {
				if err := im.block(u, j); err != nil {
					return err
				}
			}
		}
	case el.Space == nsPrivacy && el.Local == "query":
		// ejabberd keeps XEP-0191 block lists as a privacy list: its
		// deny items by jid are the block list.
		for _, l := range el.Children() {
			for _, it := range l.Children() {
				if it.Local == "item" && it.Get("type") == "jid" && it.Get("action") == "deny" {
					if err := im.block(u, it.Get("value")); err != nil {
						return err
					}
				}
			}
		}
	default:
		im.rep.Skipped = append(im.rep.Skipped, u.name+": <"+el.Local+" xmlns='"+el.Space+"'>")
	}
	return nil
}

func (im *importer) block(u *userImport, j string) error {
	p, err := jid.Parse(j)
	if err != nil {
		return fmt.Errorf("block list: %q: %w", j, err)
	}
	if err := blocking.AddTx(im.tx, u.name, p.String()); err != nil {
		return fmt.Errorf("block list: %w", err)
	}
	im.rep.Blocked++
	return nil
}

func (u *userImport) item(c string) *roster.Item {
	r := u.roster[c]
	if r == nil {
		r = &roster.Item{JID: c}
		u.roster[c] = r
		u.order = append(u.order, c)
	}
	return r
}

func bareJID(s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil || s == "" {
		return "", fmt.Errorf("bad address %q", s)
	}
	return j.Bare().String(), nil
}

func (im *importer) scram(u *userImport, el *stream.Element) error {
	dec := func(n string) ([]byte, error) {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(el.ChildText(nsScram, n)))
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("scram-credentials: bad or missing <%s/>", n)
		}
		return b, nil
	}
	salt, err := dec("salt")
	if err != nil {
		return err
	}
	server, err := dec("server-key")
	if err != nil {
		return err
	}
	stored, err := dec("stored-key")
	if err != nil {
		return err
	}
	// ejabberd 23.01 writes each value base64-encoded twice (its own
	// store keeps them in base64; export_piefxis encodes that again):
	// keys that decode to base64 of a SHA-1 or SHA-256 length are
	// decoded once more, and the salt with them.
	if k, err1 := base64.StdEncoding.DecodeString(string(server)); err1 == nil && (len(k) == 20 || len(k) == 32) {
		if sk, err2 := base64.StdEncoding.DecodeString(string(stored)); err2 == nil && len(sk) == len(k) {
			if sa, err3 := base64.StdEncoding.DecodeString(string(salt)); err3 == nil && len(sa) > 0 {
				server, stored, salt = k, sk, sa
			}
		}
	}
	iter, err := strconv.Atoi(strings.TrimSpace(el.ChildText(nsScram, "iter-count")))
	if err != nil || iter < 1 || iter > 10_000_000 {
		return errors.New("scram-credentials: bad <iter-count/>")
	}
	keys := store.ScramKeys{StoredKey: stored, ServerKey: server}
	if u.acct == nil {
		u.acct = &store.Account{Salt: salt, Iter: iter, Created: time.Now().UTC()}
	} else if string(u.acct.Salt) != string(salt) || u.acct.Iter != iter {
		// One salt and count per account here: a second hash with other
		// parameters cannot be kept beside the first.
		im.rep.Skipped = append(im.rep.Skipped, u.name+": "+el.Get("mechanism")+" credentials (salt or count differ from the first)")
		return nil
	}
	switch el.Get("mechanism") {
	case "SCRAM-SHA-1":
		if len(stored) != 20 || len(server) != 20 {
			return errors.New("scram-credentials: SCRAM-SHA-1 keys are not 20 bytes")
		}
		u.acct.SHA1 = keys
	case "SCRAM-SHA-256":
		if len(stored) != 32 || len(server) != 32 {
			return errors.New("scram-credentials: SCRAM-SHA-256 keys are not 32 bytes")
		}
		u.acct.SHA256 = keys
	default:
		im.rep.Skipped = append(im.rep.Skipped, u.name+": credentials for "+el.Get("mechanism"))
		return nil
	}
	u.hasKeys = true
	return nil
}

func (im *importer) finishUser(u *userImport) error {
	if !u.hasKeys && !u.into {
		return fmt.Errorf("%s: no credentials (neither a password nor SCRAM-SHA-1/256 verifiers): the account could not log in", u.name)
	}
	for _, c := range u.order {
		if c == u.name+"@"+im.domain || u.into && u.isSelf(c) {
			continue // RFC 6121 has no self-contact in a roster
		}
		if err := roster.PutTx(im.tx, u.name, *u.roster[c]); err != nil {
			return fmt.Errorf("%s: roster item %s: %w", u.name, c, err)
		}
		im.rep.Contacts++
	}
	if u.into {
		im.rep.Users = append(im.rep.Users, u.name)
		return nil
	}
	if err := store.CreateAccountRecordTx(im.tx, u.name, u.acct); err != nil {
		return err
	}
	im.rep.Users = append(im.rep.Users, u.name)
	return nil
}

// children calls fn with each child element of the element just opened,
// read whole, until its end.
func (im *importer) children(fn func(*stream.Element) error) error {
	for {
		t, err := im.next()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			el, err := im.element(t)
			if err != nil {
				return err
			}
			if err := fn(el); err != nil {
				return err
			}
		}
	}
}

func (im *importer) offline(u *userImport) error {
	return im.children(func(el *stream.Element) error {
		if el.Local != "message" || el.Space != nsClient {
			im.rep.Skipped = append(im.rep.Skipped, u.name+": <"+el.Local+"/> in offline messages")
			return nil
		}
		im.stripIDs(u, el)
		if err := offline.ImportTx(im.tx, im.domain, u.name, el); err != nil {
			return fmt.Errorf("offline message: %w", err)
		}
		im.rep.Offline++
		return nil
	})
}

func (im *importer) archive(u *userImport) error {
	return im.children(func(el *stream.Element) error {
		if el.Local != "result" || el.Space != nsMAM {
			im.rep.Skipped = append(im.rep.Skipped, u.name+": <"+el.Local+"/> in the archive")
			return nil
		}
		fw := el.Child(nsForward, "forwarded")
		if fw == nil {
			return errors.New("archive: a <result/> without <forwarded/>")
		}
		msg := fw.Child(nsClient, "message")
		if msg == nil {
			return errors.New("archive: a <result/> without a message")
		}
		var when time.Time
		if d := fw.Child(nsDelay, "delay"); d != nil {
			t, err := time.Parse(time.RFC3339Nano, d.Get("stamp"))
			if err != nil {
				return fmt.Errorf("archive: bad delay stamp %q", d.Get("stamp"))
			}
			when = t
		}
		// Our own ids come back as they were (clients that synced keep
		// their place); others' ids are not ours, and a message gets the
		// id of its time, kept in order.
		id, ok := mam.ParseID(el.Get("id"))
		if !ok {
			id = mam.IDAt(when)
		}
		if u.lastID == 0 {
			u.lastID = mam.LastIDTx(im.tx, u.name)
		}
		if id <= u.lastID {
			id = u.lastID + 1
		}
		u.lastID = id
		from, to := msg.Get("from"), msg.Get("to")
		out := false
		peer := from
		if fb, err := bareJID(from); err == nil && u.isSelf(fb) {
			out, peer = true, to
		}
		im.stripIDs(u, msg)
		if err := mam.ImportTx(im.st, im.tx, u.name, out, peer, msg, id); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		im.rep.Archived++
		return nil
	})
}

func (u *userImport) isSelf(bare string) bool {
	for _, b := range u.bare {
		if b == bare {
			return true
		}
	}
	return false
}

// stripIDs removes the stanza-ids the account's old archive stamped: a
// query adds this server's own.
func (im *importer) stripIDs(u *userImport, el *stream.Element) {
	kept := el.Nodes[:0]
	for _, n := range el.Nodes {
		if n.El != nil && n.El.Space == nsSID && n.El.Local == "stanza-id" && u.isSelf(n.El.Get("by")) {
			continue
		}
		kept = append(kept, n)
	}
	el.Nodes = kept
}

// element reads the element s opened, whole, bounded in size and depth.
func (im *importer) element(s xml.StartElement) (*stream.Element, error) {
	start := im.d.InputOffset()
	root := convert(s)
	stack := []*stream.Element{root}
	for len(stack) > 0 {
		if im.d.InputOffset()-start > maxUnitBytes {
			return nil, fmt.Errorf("line %d: <%s/> is larger than %d bytes", im.line(), s.Name.Local, maxUnitBytes)
		}
		t, err := im.d.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed XML (line %d): %w", im.line(), err)
		}
		top := stack[len(stack)-1]
		switch t := t.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("line %d: elements nested deeper than %d", im.line(), maxDepth)
			}
			c := convert(t)
			top.Add(c)
			stack = append(stack, c)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			top.AddText(string(t))
		case xml.Directive:
			return nil, fmt.Errorf("line %d: DTDs and entity declarations are not accepted", im.line())
		case xml.ProcInst:
			return nil, fmt.Errorf("line %d: processing instruction not accepted", im.line())
		}
	}
	return root, nil
}

// convert turns a decoder start element into a stream element: the
// namespace declarations go (stream elements carry resolved namespaces;
// serializing declares what is needed).
func convert(s xml.StartElement) *stream.Element {
	el := &stream.Element{Space: s.Name.Space, Local: s.Name.Local}
	for _, a := range s.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		el.Attr = append(el.Attr, stream.Attr{Space: a.Name.Space, Local: a.Name.Local, Value: a.Value})
	}
	return el
}
