package xmppd

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/hearthchat/hearth/appliance/state"
	setupui "github.com/hearthchat/hearth/setup-ui"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/mod/roster"
	"github.com/hearthchat/hearth/xmppd/server"
)

// oldServerDoc is one account as another server exports it: its own
// name and host, its own credentials (a password the new member does not
// use here), a contact, a block list and one archived message.
const oldServerDoc = `<?xml version='1.0' encoding='UTF-8'?>
<server-data xmlns='urn:xmpp:pie:0'>
<host jid='old.example'>
<user name='annaold' password='the-old-password'>
<query xmlns='jabber:iq:roster'><item jid='friend@remote.example' subscription='both' name='Friend'><group>Rowing</group></item></query>
<blocklist xmlns='urn:xmpp:blocking'><item jid='bob@hearth.localhost'/></blocklist>
<archive xmlns='urn:xmpp:pie:0#mam'>
<result xmlns='urn:xmpp:mam:2' id='x1'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2025-05-01T10:00:00Z'/><message xmlns='jabber:client' from='annaold@old.example/phone' to='friend@remote.example' type='chat'><body>hello from before</body></message></forwarded></result>
</archive>
</user>
</host>
</server-data>
`

// TestJoinWithDataRunning: a new member registers with an invite on the
// running server and brings their account file from another server: the
// account is the chosen name with the chosen password (the file's is not
// used), the file's contact, block list and archive are there, and the
// running modules enforce the imported block list at once (blocking reads
// its lists at start: without server.AccountImported bob's messages reach
// anna until a restart). A file that cannot be imported makes no account
// and spends no invite.
func TestJoinWithDataRunning(t *testing.T) {
	dir := state.Dir(t.TempDir())
	d := startTest(t, dir)
	for _, u := range []string{"sue", "bob"} {
		if err := d.Store.CreateAccount(u, u+"-password", u == "sue"); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := invites.Create(d.Store, invites.Options{Inviter: "sue", Uses: 2})
	if err != nil {
		t.Fatal(err)
	}

	// A refused file: nothing made, the invite still has both uses.
	two := strings.Replace(oldServerDoc, "</host>", "<user name='second' password='x-password'/></host>", 1)
	_, _, err = d.joinWithData(inv.Token, "anna", "anna-new-password", strings.NewReader(two))
	var ie *setupui.ImportError
	if !errors.As(err, &ie) || !strings.Contains(ie.Reason, "more than one account") {
		t.Fatalf("two accounts in the file: %v", err)
	}
	if d.Server.AccountExists("anna") {
		t.Fatal("a refused file made the account")
	}
	if got, err := invites.Get(d.Store, inv.Token); err != nil || got.Uses != 2 {
		t.Fatalf("invite after a refused file: %+v %v", got, err)
	}
	_, _, err = d.joinWithData(inv.Token, "anna", "anna-new-password", strings.NewReader("<not-xep-0227/>"))
	if !errors.As(err, &ie) || !strings.Contains(ie.Reason, "not an account file (XEP-0227)") {
		t.Fatalf("not a document: %v", err)
	}

	user, res, err := d.joinWithData(inv.Token, "Anna", "anna-new-password", strings.NewReader(oldServerDoc))
	if err != nil || user != "anna" || res.Contacts == 0 || res.Archived != 1 {
		t.Fatalf("join with data: %q %+v %v", user, res, err)
	}
	if err := login(t, d, "anna", "the-old-password"); err == nil {
		t.Error("the file's password logs in")
	}
	anna := dial(t, d, "anna", "anna-new-password")
	if it, ok, _ := roster.Get(d.Store, "anna", "friend@remote.example"); !ok || it.Sub != roster.Both || it.Name != "Friend" {
		t.Errorf("imported contact: %+v %v", it, ok)
	}
	if it, ok, _ := roster.Get(d.Store, "anna", "sue@hearth.localhost"); !ok || it.Sub != roster.Both {
		t.Errorf("inviter contact: %+v %v", it, ok)
	}
	if !d.Server.Blocks("anna", jid.MustParse("bob@hearth.localhost")) {
		t.Fatal("the imported block list is not enforced by the running server")
	}
	// The block seen end to end: bob's message does not reach anna, sue's
	// does.
	bob := dial(t, d, "bob", "bob-password")
	sue := dial(t, d, "sue", "sue-password")
	bob.Send([]byte(`<message to='anna@hearth.localhost' type='chat' id='b1'><body>from bob</body></message>`))
	sue.Send([]byte(`<message to='anna@hearth.localhost' type='chat' id='s1'><body>from sue</body></message>`))
	anna.Send([]byte(`<presence/>`))
	// The imported archive answers a MAM query, the old message in it with
	// the direction worked out from the old address.
	anna.Send([]byte(`<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='f1'/></iq>`))
	var got []string
	anna.SetReadDeadline(time.Now().Add(10 * time.Second))
	for done := false; !done; {
		st, err := anna.ReadStanza()
		if err != nil {
			t.Fatalf("reading anna's stanzas: %v (got %q)", err, got)
		}
		s := string(st)
		switch {
		case strings.Contains(s, "from bob"):
			t.Fatalf("bob's message reached anna, who blocked him in her file: %s", s)
		case strings.Contains(s, "hello from before") && strings.Contains(s, "queryid='f1'") || strings.Contains(s, "hello from before") && strings.Contains(s, `queryid="f1"`):
			got = append(got, "archive")
		case strings.Contains(s, "from sue"):
			got = append(got, "sue")
		case strings.Contains(s, "id='q1'") || strings.Contains(s, `id="q1"`):
			got = append(got, "fin")
		}
		done = strings.Contains(strings.Join(got, " "), "sue") && strings.Contains(strings.Join(got, " "), "fin")
	}
	if !strings.Contains(strings.Join(got, " "), "archive") {
		t.Fatalf("the imported message is not in the MAM answer: %v", got)
	}
}

// TestAdminImportRunning: the admin's import into the running server makes
// new accounts whose block lists hold at once, and refuses in words (and
// imports nothing) when a name in the file is already a member.
func TestAdminImportRunning(t *testing.T) {
	dir := state.Dir(t.TempDir())
	d := startTest(t, dir)
	if err := d.Store.CreateAccount("bob", "bob-password", false); err != nil {
		t.Fatal(err)
	}
	doc := strings.NewReplacer("old.example", "hearth.localhost", "annaold", "dora").Replace(oldServerDoc)
	collide := strings.Replace(doc, "</host>", "<user name='bob' password='x-password'/></host>", 1)
	_, err := d.importData(strings.NewReader(collide))
	var ie *setupui.ImportError
	if !errors.As(err, &ie) || !strings.Contains(ie.Reason, "bob@hearth.localhost: account exists") || !strings.Contains(ie.Reason, "remove that member first") {
		t.Fatalf("collision: %v", err)
	}
	if d.Server.AccountExists("dora") {
		t.Fatal("a refused import made dora")
	}
	other := strings.Replace(oldServerDoc, "annaold", "dora", -1)
	if _, err := d.importData(strings.NewReader(other)); !errors.As(err, &ie) || !strings.Contains(ie.Reason, "only accounts of this box's own domain") {
		t.Fatalf("another domain: %v", err)
	}
	var registered []string
	server.AccountRegistered.On(d.Server, func(r server.Registration) { registered = append(registered, r.User) })
	res, err := d.importData(strings.NewReader(doc))
	if err != nil || len(res.Users) != 1 || res.Users[0] != "dora" {
		t.Fatalf("import: %+v %v", res, err)
	}
	if !d.Server.Blocks("dora", jid.MustParse("bob@hearth.localhost")) {
		t.Fatal("the imported block list is not enforced by the running server")
	}
	if len(registered) != 1 || registered[0] != "dora" {
		t.Errorf("AccountRegistered fired for %v, want [dora] (the members' room and default room offer follow it)", registered)
	}
	dial(t, d, "dora", "the-old-password") // the file's credentials, here kept

	var out bytes.Buffer
	if err := d.exportData(nil, &out); err != nil || !strings.Contains(out.String(), "name='dora'") || !strings.Contains(out.String(), "name='bob'") {
		t.Fatalf("export of every member: %v\n%s", err, out.String())
	}
}
