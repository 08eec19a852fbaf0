package setupui

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/hearthchat/hearth/netconf/status"
)

// fedNet is netconf with its federation self-test in the report.
type fedNet struct {
	*fakeNet
	check status.Check
}

func (n *fedNet) Status(context.Context) (status.Report, error) {
	return status.Report{Checks: []status.Check{{ID: "lan", Level: status.OK, Message: "On the home network."}, n.check}}, nil
}

// TestAdminFederation: the federation page shows the config's policy and
// netconf's federation self-test; saving switches federation, stores the
// block and allow lists (domains folded to lower case, IDNA, each once),
// asks netconf to reload and the chat server to apply; every list entry
// that is not a server's name is refused with words that say what is
// wrong, keeping what was typed and changing nothing.
func TestAdminFederation(t *testing.T) {
	f, _, admin, _ := adminFixture(t)
	net := &fedNet{fakeNet: f.net, check: status.Check{ID: federationCheck, Level: status.Error,
		Message: "Other servers cannot reach hearth.local on port 5269.", Action: "Forward TCP port 5269 to this box."}}
	f.ui.d.Network = net
	applied := 0
	f.ui.d.Admin.Federation = func() (bool, error) { applied++; return true, nil }

	resp, body := admin.get("/admin/federation")
	wantStatus(t, resp, 200, "federation page")
	for _, want := range []string{"Other servers cannot reach hearth.local on port 5269.", "Forward TCP port 5269", `value="on" checked`, `href="/admin/federation" aria-current="page"`} {
		if !strings.Contains(body, want) {
			t.Errorf("federation page lacks %q", want)
		}
	}
	tok := csrfRE.FindStringSubmatch(body)[1]
	save := func(form url.Values) (*http.Response, string) {
		form.Set("csrf", tok)
		return admin.post("/admin/federation", form)
	}

	resp, _ = save(url.Values{"federation": {"on"}, "block": {"Spam.Example.\r\nbad.example, bad.example\nmünchen.example"}, "allow": {""}})
	wantRedirect(t, resp, "/admin/federation?done=saved")
	c, _ := f.cfg.Load()
	if want := []string{"spam.example", "bad.example", "xn--mnchen-3ya.example"}; c.Federation.Off || !slices.Equal(c.Federation.Block, want) || len(c.Federation.Allow) != 0 {
		t.Fatalf("saved %+v, want block %v", c.Federation, want)
	}
	if applied != 1 || f.net.reloads != 1 {
		t.Fatalf("after saving: applied %d times, netconf reloaded %d times", applied, f.net.reloads)
	}
	_, body = admin.get("/admin/federation?done=saved")
	if !strings.Contains(body, "bad.example\nmünchen.example</textarea>") || !strings.Contains(body, "uses these settings now") {
		t.Fatalf("page after saving: %s", body)
	}

	// Off, with an allow list; a chat server that applies it only at
	// its next start says so.
	f.ui.d.Admin.Federation = func() (bool, error) { return false, nil }
	resp, _ = save(url.Values{"federation": {"off"}, "block": {""}, "allow": {"friends.example"}})
	wantRedirect(t, resp, "/admin/federation?done=saved-later")
	c, _ = f.cfg.Load()
	if !c.Federation.Off || len(c.Federation.Block) != 0 || !slices.Equal(c.Federation.Allow, []string{"friends.example"}) {
		t.Fatalf("saved %+v", c.Federation)
	}
	if _, body = admin.get("/admin/federation?done=saved-later"); !strings.Contains(body, "from its next start") || !strings.Contains(body, `value="off" checked`) ||
		!strings.Contains(body, "federation is off") {
		t.Fatalf("page after saving off: %s", body)
	}

	before := c.Federation
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"federation": {"on"}, "block": {"dave@evil.example"}}, "is a chat address, not a server. Write only the part after the @, for example evil.example."},
		{url.Values{"federation": {"on"}, "block": {"https://evil.example/"}}, "is a web address"},
		{url.Values{"federation": {"on"}, "block": {"*.evil.example"}}, "without “*.”"},
		{url.Values{"federation": {"on"}, "allow": {"ok.example\nno_good.example"}}, "“no_good.example” in the list of allowed servers is not a server's name"},
		{url.Values{"federation": {"on"}, "block": {"localhost"}}, "is not a server's name"},
		{url.Values{"federation": {"on"}, "block": {"HEARTH.local"}}, "is this box's own name"},
		{url.Values{"federation": {"on"}, "block": {"x.example"}, "allow": {"x.example"}}, "x.example is in both lists"},
		{url.Values{"federation": {"maybe"}}, "Please choose whether"},
		{url.Values{"federation": {"on"}, "block": {strings.Repeat("a.example ", 1) + strings.Repeat("x", 300) + ".example"}}, "is not a server's name"},
		{url.Values{"federation": {"on"}, "block": {func() string {
			var b strings.Builder
			for i := range 201 {
				b.WriteString("s" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".ex\n")
			}
			return b.String()
		}()}}, "more than 200 servers"},
	} {
		resp, body := save(tc.form)
		wantStatus(t, resp, http.StatusBadRequest, tc.form.Encode())
		text := html.UnescapeString(body)
		if !strings.Contains(text, tc.want) || !strings.Contains(text, "Nothing was saved.") || !strings.Contains(body, `role="alert"`) {
			t.Errorf("%s: page lacks %q:\n%s", tc.form.Encode(), tc.want, text)
		}
		if b := tc.form.Get("block"); b != "" && len(b) < 100 && !strings.Contains(text, b+"</textarea>") {
			t.Errorf("%s: the typed list is not kept", tc.form.Encode())
		}
		if c, _ := f.cfg.Load(); c.Federation.Off != before.Off || !slices.Equal(c.Federation.Block, before.Block) || !slices.Equal(c.Federation.Allow, before.Allow) {
			t.Fatalf("%s: refused form changed the config to %+v", tc.form.Encode(), c.Federation)
		}
	}
}
