package csi_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/xmppd/client"
	"github.com/hearthchat/hearth/xmppd/internal/xmpptest"
	"github.com/hearthchat/hearth/xmppd/mod/csi"
	"github.com/hearthchat/hearth/xmppd/sasl"
	"github.com/hearthchat/hearth/xmppd/stream"
)

const (
	nsSASL2 = "urn:xmpp:sasl:2"
	nsBind2 = "urn:xmpp:bind:0"
)

// TestInactiveInBind2: CSI is offered inside Bind 2 (XEP-0386), and a
// client that sends <inactive/> in its bind request is inactive from its
// first stanza: presence churn to it is held, with no nonza sent.
func TestInactiveInBind2(t *testing.T) {
	d := xmpptest.Start(t, nil)
	c := xmpptest.Dial(t, d.C2STLSAddr, true)
	f := c.Open()
	var vars []string
	for _, fe := range f.Child(nsSASL2, "authentication").Child(nsSASL2, "inline").Child(nsBind2, "bind").Child(nsBind2, "inline").Children() {
		vars = append(vars, fe.Get("var"))
	}
	if !strings.Contains(" "+strings.Join(vars, " ")+" ", " "+ns+" ") {
		t.Fatalf("csi not among the Bind 2 inline features %q", vars)
	}

	// One SASL2 login (SCRAM-SHA-256), bound inactive.
	cl, err := client.NewScram(sasl.SHA256, "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	c.Send(fmt.Sprintf("<authenticate xmlns='%s' mechanism='SCRAM-SHA-256'><initial-response>%s</initial-response>"+
		"<bind xmlns='%s'><tag>phone</tag><inactive xmlns='%s'/></bind></authenticate>",
		nsSASL2, base64.StdEncoding.EncodeToString(cl.First()), nsBind2, ns))
	var success *stream.Element
	for success == nil {
		el := c.El()
		switch {
		case el.Space == nsSASL2 && el.Local == "challenge":
			data, _ := base64.StdEncoding.DecodeString(el.Text())
			resp, err := cl.Final(data)
			if err != nil {
				t.Fatal(err)
			}
			c.Send("<response xmlns='" + nsSASL2 + "'>" + base64.StdEncoding.EncodeToString(resp) + "</response>")
		case el.Space == nsSASL2 && el.Local == "success" && el.Child(nsBind2, "bound") != nil:
			success = el
		default:
			t.Fatalf("SASL2 login: %s", el)
		}
	}
	full := success.ChildText(nsSASL2, "authorization-identifier")
	c.El() // the stream's features after <success/>
	_, res, _ := strings.Cut(full, "/")
	s := sess(t, d, "alice", res)

	from := contacts(5)
	for i := range 3 {
		for _, f := range from {
			d.Server.Route(stream.New(stream.NSClient, "presence", "from", f, "to", full).
				Add(stream.New(stream.NSClient, "status").AddText(fmt.Sprint(i))))
		}
	}
	if n := csi.Held(s); n != 5 {
		t.Fatalf("held %d stanzas, want 5 (the latest presence of each contact): the bind request's <inactive/> was not applied", n)
	}
	// <active/> as a nonza sends them, in order.
	c.Send("<active xmlns='" + ns + "'/>")
	for i := range from {
		el := c.El()
		if el.Local != "presence" || el.Get("from") != from[i] || el.ChildText(stream.NSClient, "status") != "2" {
			t.Fatalf("stanza %d after <active/>: %s", i, el)
		}
	}
}
