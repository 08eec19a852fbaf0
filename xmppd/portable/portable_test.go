package portable

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

const domain = "hearth.test"

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func el(t testing.TB, s string) *stream.Element {
	t.Helper()
	e, err := stream.ParseElement([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// fill gives user one of every kind of data the export carries.
func fill(t testing.TB, st *store.Store, user string, archived int) {
	t.Helper()
	if err := st.CreateAccount(user, "secret "+user, false); err != nil {
		t.Fatal(err)
	}
	err := st.Update(func(tx *bolt.Tx) error {
		for _, it := range []roster.Item{
			{JID: "romeo@montague.example", Name: "Romeo", Groups: []string{"Friends", "Family"}, Sub: roster.Both, Listed: true},
			{JID: "nurse@" + domain, Sub: roster.From, Ask: true, Listed: true},
			{JID: "tybalt@capulet.example", PendingIn: true, Request: []byte(`<presence xmlns='jabber:client' from='tybalt@capulet.example' type='subscribe'><status>let me in</status></presence>`)},
		} {
			if err := roster.PutTx(tx, user, it); err != nil {
				return err
			}
		}
		if err := vcard.PutTx(tx, user, el(t, `<vCard xmlns='vcard-temp'><FN>Juliet &amp; co</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO></vCard>`)); err != nil {
			return err
		}
		if err := private.PutTx(tx, user, el(t, `<storage xmlns='storage:bookmarks'><conference jid='club@groups.hearth.test' autojoin='true'/></storage>`)); err != nil {
			return err
		}
		if err := private.PutTx(tx, user, el(t, `<prefs xmlns='exodus:prefs'><nick xml:lang='en'>J</nick></prefs>`)); err != nil {
			return err
		}
		form := el(t, `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value></field><field var='pubsub#max_items'><value>max</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x>`)
		if _, err := pep.ImportNodeTx(tx, user, "urn:xmpp:bookmarks:1", form, []*stream.Element{
			el(t, `<item xmlns='http://jabber.org/protocol/pubsub' id='club@groups.hearth.test'><conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'><nick>J</nick></conference></item>`),
			el(t, `<item xmlns='http://jabber.org/protocol/pubsub' id='b@groups.hearth.test'><conference xmlns='urn:xmpp:bookmarks:1'/></item>`),
		}); err != nil {
			return err
		}
		if _, err := pep.ImportNodeTx(tx, user, "urn:xmpp:avatar:data", nil, []*stream.Element{
			el(t, `<item xmlns='http://jabber.org/protocol/pubsub' id='abc'><data xmlns='urn:xmpp:avatar:data'>iVBORw0KGgo=</data></item>`),
		}); err != nil {
			return err
		}
		for _, j := range []string{"spam@evil.example", "evil.example"} {
			if err := blocking.AddTx(tx, user, j); err != nil {
				return err
			}
		}
		if err := offline.ImportTx(tx, domain, user, el(t, `<message xmlns='jabber:client' from='romeo@montague.example/orchard' to='`+user+`@`+domain+`' type='chat'><body>while you were out</body><delay xmlns='urn:xmpp:delay' from='hearth.test' stamp='2026-01-02T03:04:05.000Z'>Offline storage</delay></message>`)); err != nil {
			return err
		}
		base := mam.IDAt(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		for i := 0; i < archived; i++ {
			out := i%2 == 0
			from, to := "romeo@montague.example/orchard", user+"@"+domain+"/balcony"
			if out {
				from, to = to, from
			}
			m := el(t, fmt.Sprintf(`<message xmlns='jabber:client' from='%s' to='%s' type='chat' id='m%d'><body>message %d &lt;3</body></message>`, from, to, i, i))
			peer := from
			if out {
				peer = to
			}
			if err := mam.ImportTx(st, tx, user, out, peer, m, base+uint64(i)*1000); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func export(t testing.TB, st *store.Store, users ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Export(st, domain, users, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRoundTrip: every kind of data comes back from an export imported
// into an empty server, exactly: the second server's export is the same
// document, byte for byte.
func TestRoundTrip(t *testing.T) {
	a := openStore(t)
	fill(t, a, "juliet", 5)
	doc := export(t, a, "juliet")
	for _, want := range []string{
		"<server-data xmlns='urn:xmpp:pie:0'>", "mechanism='SCRAM-SHA-1'", "mechanism='SCRAM-SHA-256'",
		"<group>Family</group>", "ask='subscribe'", "<status>let me in</status>", "<FN>Juliet &amp; co</FN>", "<BINVAL>",
		"storage:bookmarks", "xml:lang='en'", "urn:xmpp:bookmarks:1", "whitelist", "urn:xmpp:avatar:data",
		"<item jid='evil.example'/>", "<offline-messages>", "while you were out", "<archive xmlns='urn:xmpp:pie:0#mam'>",
		"message 4 &lt;3",
	} {
		if !bytes.Contains(doc, []byte(want)) {
			t.Errorf("export lacks %q:\n%s", want, doc)
		}
	}
	if bytes.Contains(doc, []byte("secret juliet")) || bytes.Contains(doc, []byte("password=")) {
		t.Fatal("the export holds the password")
	}
	b := openStore(t)
	rep, err := Import(b, domain, bytes.NewReader(doc), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Contacts != 3 || rep.Archived != 5 || rep.Offline != 1 || rep.Blocked != 2 || rep.Private != 2 || rep.VCards != 1 || rep.PEPItems != 3 {
		t.Errorf("report %+v", rep)
	}
	if len(rep.Skipped) != 0 {
		t.Errorf("skipped %q", rep.Skipped)
	}
	again := export(t, b, "juliet")
	if !bytes.Equal(doc, again) {
		t.Fatalf("second export differs:\n%s\n---\n%s", doc, again)
	}
	// The budgets were charged as if the data had come in by XMPP.
	ua, _ := a.Usage("juliet")
	ub, _ := b.Usage("juliet")
	if fmt.Sprint(ua) != fmt.Sprint(ub) {
		t.Errorf("usage %v, imported %v", ua, ub)
	}
}

// snapshot hashes every key and value of the database.
func snapshot(t *testing.T, st *store.Store) string {
	t.Helper()
	h := sha256.New()
	err := st.View(func(tx *bolt.Tx) error {
		var walk func(b *bolt.Bucket, depth int) error
		walk = func(b *bolt.Bucket, depth int) error {
			return b.ForEach(func(k, v []byte) error {
				fmt.Fprintf(h, "%d %q %q\n", depth, k, v)
				if v == nil {
					if nb := b.Bucket(k); nb != nil {
						return walk(nb, depth+1)
					}
				}
				return nil
			})
		}
		return tx.ForEach(func(n []byte, b *bolt.Bucket) error {
			fmt.Fprintf(h, "bucket %q\n", n)
			return walk(b, 1)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestBadInput: each bad document is refused with a message saying why,
// and changes nothing — also when it fails after a first account's data
// was already written in the transaction.
func TestBadInput(t *testing.T) {
	src := openStore(t)
	fill(t, src, "juliet", 3)
	fill(t, src, "romeo", 3)
	good := string(export(t, src, "juliet"))
	two := string(export(t, src, "romeo", "juliet"))
	// romeo imports cleanly, then juliet2's data is written, then the fault.
	renamed := strings.ReplaceAll(two, "name='juliet'", "name='juliet2'")

	dst := openStore(t)
	fill(t, dst, "juliet", 2) // the collision
	before := snapshot(t, dst)

	bomb := `<?xml version='1.0'?>
<!DOCTYPE server-data [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<server-data xmlns='urn:xmpp:pie:0'><host jid='hearth.test'><user name='x' password='p'><vCard xmlns='vcard-temp'><FN>&c;</FN></vCard></user></host></server-data>`
	cut := strings.Index(renamed, "<archive")
	noKeys := `<server-data xmlns='urn:xmpp:pie:0'><host jid='hearth.test'><user name='nokeys'><vCard xmlns='vcard-temp'/></user></host></server-data>`
	big := strings.Replace(good, "<vCard xmlns='vcard-temp'>", "<vCard xmlns='vcard-temp'><NOTE>"+strings.Repeat("x", 300<<10)+"</NOTE>", 1)
	for _, c := range []struct {
		name, doc string
		o         Options
		want      string
	}{
		{"malformed", strings.Replace(renamed, "</archive>", "</archiv>", 1), Options{}, "malformed XML"},
		{"truncated", renamed[:len(renamed)-200], Options{}, "malformed XML"},
		{"entity bomb", bomb, Options{}, "DTDs and entity declarations are not accepted"},
		{"undeclared entity", strings.Replace(renamed, "Juliet &amp; co", "&lol;", 1), Options{}, "malformed XML"},
		{"oversize", renamed, Options{MaxBytes: int64(len(renamed) - 10)}, "larger than"},
		{"other domain", strings.ReplaceAll(renamed, "host jid='hearth.test'", "host jid='elsewhere.example'"), Options{}, "this server is \"hearth.test\""},
		{"collision", two, Options{}, "account exists"},
		{"no credentials", noKeys, Options{}, "no credentials"},
		{"the box's own name", strings.ReplaceAll(renamed, "name='juliet2'", "name='_health'"), Options{}, "the server's own"},
		{"vcard over the module's limit", strings.ReplaceAll(big, "name='juliet'", "name='juliet3'"), Options{}, "vcard"},
		{"not XEP-0227", `<foo/>`, Options{}, "not an XEP-0227 document"},
		{"half a document", renamed[:cut], Options{}, "malformed XML"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Import(dst, domain, strings.NewReader(c.doc), c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
			if c.name == "collision" && !errors.Is(err, ErrExists) {
				t.Errorf("collision: %v is not ErrExists", err)
			}
			if snapshot(t, dst) != before {
				t.Fatal("the failed import changed the database")
			}
		})
	}
	// The same documents, fixed, do import (the failures above were the
	// faults, not something else).
	if _, err := Import(dst, domain, strings.NewReader(renamed), Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestMapDomain: a member moving from another server imports with its
// old domain named explicitly; their own messages are recognised as sent.
func TestMapDomain(t *testing.T) {
	doc := `<server-data xmlns='urn:xmpp:pie:0'><host jid='old.example'><user name='Anna' password='pw'>
<query xmlns='jabber:iq:roster'><item jid='bob@old.example' subscription='to' name='Bob'><group>G</group></item></query>
<archive xmlns='urn:xmpp:pie:0#mam'><result xmlns='urn:xmpp:mam:2' id='xyz'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-05-05T05:05:05Z'/><message xmlns='jabber:client' from='anna@old.example/phone' to='bob@old.example' type='chat'><body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='anna@old.example' id='xyz'/></message></forwarded></result></archive>
</user></host></server-data>`
	st := openStore(t)
	if _, err := Import(st, domain, strings.NewReader(doc), Options{}); err == nil {
		t.Fatal("another domain imported without being mapped")
	}
	if _, err := Import(st, domain, strings.NewReader(doc), Options{MapDomain: "old.example"}); err != nil {
		t.Fatal(err)
	}
	out := string(export(t, st, "anna"))
	for _, want := range []string{"<item jid='bob@old.example' name='Bob' subscription='to'><group>G</group></item>", "<body>hi</body>", "stamp='2025-05-05T05:05:05.000000Z'"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "stanza-id") {
		t.Errorf("the old server's stanza-id was kept:\n%s", out)
	}
	st.View(func(tx *bolt.Tx) error {
		return mam.EachTx(tx, "anna", func(r mam.Record) error {
			if !r.Outgoing || r.Peer != "bob@old.example" {
				t.Errorf("record %+v", r)
			}
			return nil
		})
	})
}

// TestSplitDocument: a document split with XInclude (XEP-0227 §5, as
// ejabberd's export_piefxis writes it) imports through Options.Include,
// and is refused without it.
func TestSplitDocument(t *testing.T) {
	files := map[string]string{
		"host.xml":      `<host xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude' jid='hearth.test'><xi:include href='host/anna.xml'/></host>`,
		"host/anna.xml": `<user xmlns='urn:xmpp:pie:0' name='anna' password='pw'><vCard xmlns='vcard-temp'><FN>Anna</FN></vCard></user>`,
	}
	main := `<?xml version='1.0'?><server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='host.xml'/></server-data>`
	open := func(href string) (io.ReadCloser, error) {
		f, ok := files[href]
		if !ok {
			return nil, os.ErrNotExist
		}
		return io.NopCloser(strings.NewReader(f)), nil
	}
	st := openStore(t)
	if _, err := Import(st, domain, strings.NewReader(main), Options{}); err == nil || !strings.Contains(err.Error(), "XInclude") {
		t.Fatalf("split document without Include: %v", err)
	}
	rep, err := Import(st, domain, strings.NewReader(main), Options{Include: open})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Users) != 1 || rep.VCards != 1 {
		t.Fatalf("report %+v", rep)
	}
	files["host/anna.xml"] = `<host xmlns='urn:xmpp:pie:0' jid='hearth.test'/>`
	st2 := openStore(t)
	if _, err := Import(st2, domain, strings.NewReader(main), Options{Include: open}); err == nil {
		t.Fatal("a <host/> file where a <user/> belongs was imported")
	}
}

// TestEjabberdScram: ejabberd 23.01 writes SCRAM values base64-encoded
// twice; they are read as the same verifiers as Prosody's form, and
// ExportWith(Ejabberd) writes them that way.
func TestEjabberdScram(t *testing.T) {
	a := openStore(t)
	fill(t, a, "juliet", 0)
	var plain, twice bytes.Buffer
	if err := Export(a, domain, []string{"juliet"}, &plain); err != nil {
		t.Fatal(err)
	}
	if err := ExportWith(a, domain, []string{"juliet"}, &twice, ExportOptions{Ejabberd: true}); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(plain.Bytes(), twice.Bytes()) {
		t.Fatal("the ejabberd form is the same")
	}
	for _, doc := range []*bytes.Buffer{&plain, &twice} {
		b := openStore(t)
		if _, err := Import(b, domain, bytes.NewReader(doc.Bytes()), Options{}); err != nil {
			t.Fatal(err)
		}
		x, _ := a.Account("juliet")
		y, _ := b.Account("juliet")
		if fmt.Sprint(x.Salt, x.Iter, x.SHA1, x.SHA256) != fmt.Sprint(y.Salt, y.Iter, y.SHA1, y.SHA256) {
			t.Fatalf("verifiers differ after import:\n%v\n%v", x, y)
		}
	}
}
