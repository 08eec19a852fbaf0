package portable

import (
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/mod/blocking"
	"github.com/hearthchat/hearth/xmppd/mod/mam"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/store"
)

// intoDoc is a member's file from their old server: another name, another
// host, its own credentials, a self-contact, and archived messages both
// ways.
const intoDoc = `<server-data xmlns='urn:xmpp:pie:0'><host jid='old.example'><user name='julia'>
<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'><server-key>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</server-key><stored-key>AAAAAAAAAAAAAAAAAAAAAAAAAAA=</stored-key><iter-count>4096</iter-count><salt>c2FsdA==</salt></scram-credentials>
<query xmlns='jabber:iq:roster'><item jid='julia@old.example' subscription='both'/><item jid='romeo@montague.example' subscription='both'><group>Verona</group></item></query>
<blocklist xmlns='urn:xmpp:blocking'><item jid='tybalt@capulet.example'/></blocklist>
<archive xmlns='urn:xmpp:pie:0#mam'>
<result xmlns='urn:xmpp:mam:2' id='a'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-01-01T10:00:00Z'/><message xmlns='jabber:client' from='julia@old.example/x' to='romeo@montague.example' type='chat'><body>out</body></message></forwarded></result>
<result xmlns='urn:xmpp:mam:2' id='b'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-01-01T10:01:00Z'/><message xmlns='jabber:client' from='romeo@montague.example/y' to='julia@old.example' type='chat'><body>in</body></message></forwarded></result>
</archive>
</user></host></server-data>`

// TestImportInto: Options.Into puts the file's one account into the
// account the caller just made (an invite's registration): any host, the
// file's name mapped (its self-contact dropped, its messages recognised
// as the member's own), the member's new credentials kept; a file with two
// accounts is refused.
func TestImportInto(t *testing.T) {
	st := openStore(t)
	var before *store.Account
	err := st.Update(func(tx *bolt.Tx) error {
		if err := store.CreateAccountTx(tx, "jules", "new password", false); err != nil {
			return err
		}
		before, _ = store.AccountTx(tx, "jules")
		rep, err := ImportTx(st, tx, domain, strings.NewReader(intoDoc), Options{Into: "jules"})
		if err != nil {
			return err
		}
		if len(rep.Users) != 1 || rep.Users[0] != "jules" || rep.Contacts != 1 || rep.Archived != 2 || rep.Blocked != 1 {
			t.Errorf("report %+v", rep)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.View(func(tx *bolt.Tx) error {
		a, _ := store.AccountTx(tx, "jules")
		if string(a.Salt) != string(before.Salt) || string(a.SHA256.StoredKey) != string(before.SHA256.StoredKey) {
			t.Error("the file's credentials replaced the member's new password")
		}
		var out []bool
		mam.EachTx(tx, "jules", func(r mam.Record) error { out = append(out, r.Outgoing); return nil })
		if len(out) != 2 || !out[0] || out[1] {
			t.Errorf("archive directions %v, want [true false]", out)
		}
		if l := blocking.ListTx(tx, "jules"); len(l) != 1 || l[0] != "tybalt@capulet.example" {
			t.Errorf("block list %v", l)
		}
		return nil
	})
	if _, ok, _ := roster.Get(st, "jules", "julia@old.example"); ok {
		t.Error("the old self-contact was imported")
	}
	if it, ok, _ := roster.Get(st, "jules", "romeo@montague.example"); !ok || len(it.Groups) != 1 {
		t.Errorf("contact %+v %v", it, ok)
	}

	two := strings.Replace(intoDoc, "</host>", "<user name='other' password='pw'/></host>", 1)
	err = st.Update(func(tx *bolt.Tx) error {
		if err := store.CreateAccountTx(tx, "kim", "kim password", false); err != nil {
			return err
		}
		_, err := ImportTx(st, tx, domain, strings.NewReader(two), Options{Into: "kim"})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "more than one account") {
		t.Fatalf("two accounts: %v", err)
	}
	if a, _ := st.Account("kim"); a != nil {
		t.Error("the refused import's account stayed")
	}
}
