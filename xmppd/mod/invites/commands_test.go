package invites_test

import (
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const nsCommands = "http://jabber.org/protocol/commands"

func commandNodes(t *testing.T, c *xmpptest.Client) []string {
	t.Helper()
	c.Send("<iq type='get' id='items' to='" + xmpptest.Domain + "'><query xmlns='http://jabber.org/protocol/disco#items' node='" + nsCommands + "'/></iq>")
	el := c.El()
	if el.Get("type") != "result" {
		t.Fatalf("commands list: %s", el)
	}
	var out []string
	for _, it := range el.FirstChild().Children() {
		out = append(out, it.Get("node"))
	}
	return out
}

func execute(c *xmpptest.Client, node, extra string) *stream.Element {
	c.Send("<iq type='set' id='exec' to='" + xmpptest.Domain + "'><command xmlns='" + nsCommands + "' node='" + node + "' action='execute'" + extra + "</iq>")
	return c.El()
}

func formValue(x *stream.Element, v string) string {
	for _, f := range x.Children() {
		if f.Get("var") == v {
			return f.ChildText("jabber:x:data", "value")
		}
	}
	return ""
}

// TestInviteCommand: XEP-0401 §5 over XEP-0050: an admin gets an invite
// link; a member only when the admin allows it; a limited account never
// (neither listed nor runnable).
func TestInviteCommand(t *testing.T) {
	d := xmpptest.Start(t, nil)
	if err := d.Store.CreateAccount("root", "root-pw", true); err != nil {
		t.Fatal(err)
	}
	lim, _ := invites.Create(d.Store, invites.Options{Role: invites.RoleLimited})
	if _, err := invites.Redeem(d.Store, lim.Token, "lim", "lim-pw"); err != nil {
		t.Fatal(err)
	}
	membersMay := false
	invites.Configure(d.Server, invites.Policy{
		MembersMayInvite: func() bool { return membersMay },
		LandingURL:       func(tok string) string { return "https://" + xmpptest.Domain + "/i/" + tok },
	})

	root := xmpptest.Login(t, d, "root", "phone")
	if n := commandNodes(t, root); !slicesContain(n, invites.NodeInvite) || !slicesContain(n, invites.NodeCreateAccount) {
		t.Fatalf("admin's commands: %v", n)
	}
	el := execute(root, invites.NodeInvite, "/>")
	cmd := el.Child(nsCommands, "command")
	if el.Get("type") != "result" || cmd == nil || cmd.Get("status") != "completed" {
		t.Fatalf("invite command: %s", el)
	}
	x := cmd.Child("jabber:x:data", "x")
	uri, landing := formValue(x, "uri"), formValue(x, "landing-url")
	if formValue(x, "FORM_TYPE") != "urn:xmpp:invite" || !strings.HasPrefix(uri, "xmpp:"+xmpptest.Domain+"?register;preauth=") || formValue(x, "expire") == "" {
		t.Fatalf("result form: %s", x)
	}
	tok := strings.TrimPrefix(uri, "xmpp:"+xmpptest.Domain+"?register;preauth=")
	if landing != "https://"+xmpptest.Domain+"/i/"+tok {
		t.Fatalf("landing-url %q for token %q", landing, tok)
	}
	inv, err := invites.Get(d.Store, tok)
	if err != nil || inv.Inviter != "root" || inv.Role != invites.RoleMember {
		t.Fatalf("stored invite: %+v %v", inv, err)
	}
	// The new member registers with it and becomes root's contact (the
	// roster module's part is tested there; here: it registers).
	if el := register(t, d, tok, "newbie", "newbie-password"); el.Get("type") != "result" {
		t.Fatalf("registration with the command's invite: %s", el)
	}

	// create-account: a form first, then the invite reserving the name.
	el = execute(root, invites.NodeCreateAccount, "/>")
	cmd = el.Child(nsCommands, "command")
	if cmd == nil || cmd.Get("status") != "executing" || cmd.Child("jabber:x:data", "x") == nil {
		t.Fatalf("create-account first stage: %s", el)
	}
	sid := cmd.Get("sessionid")
	el = execute(root, invites.NodeCreateAccount, " sessionid='"+sid+"'><x xmlns='jabber:x:data' type='submit'><field var='username'><value>Gran</value></field><field var='roster-subscription'><value>0</value></field></x></command>")
	cmd = el.Child(nsCommands, "command")
	if cmd == nil || cmd.Get("status") != "completed" {
		t.Fatalf("create-account: %s", el)
	}
	tok = strings.TrimPrefix(formValue(cmd.Child("jabber:x:data", "x"), "uri"), "xmpp:"+xmpptest.Domain+"?register;preauth=")
	if inv, err := invites.Get(d.Store, tok); err != nil || inv.User != "gran" || !inv.NoRoster {
		t.Fatalf("create-account invite: %+v %v", inv, err)
	}
	// The finished session is gone.
	if el := execute(root, invites.NodeCreateAccount, " sessionid='"+sid+"'/>"); el.Get("type") != "error" {
		t.Fatalf("reused session: %s", el)
	}

	alice := xmpptest.Login(t, d, "alice", "phone")
	if n := commandNodes(t, alice); len(n) != 0 {
		t.Fatalf("member sees commands while members may not invite: %v", n)
	}
	if el := execute(alice, invites.NodeInvite, "/>"); condition(el) != "forbidden" {
		t.Fatalf("member invites while not allowed: %s", el)
	}
	membersMay = true
	if el := execute(alice, invites.NodeInvite, "/>"); el.Get("type") != "result" {
		t.Fatalf("member invites while allowed: %s", el)
	}
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	c.Open()
	if el := c.Auth("SCRAM-SHA-256", "lim", "lim-pw"); el.Local != "success" {
		t.Fatalf("limited login: %s", el)
	}
	c.Open()
	c.Bind("phone")
	if n := commandNodes(t, c); len(n) != 0 {
		t.Fatalf("limited account sees commands: %v", n)
	}
	if el := execute(c, invites.NodeInvite, "/>"); condition(el) != "forbidden" {
		t.Fatalf("limited account invites: %s", el)
	}
}

func slicesContain(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
