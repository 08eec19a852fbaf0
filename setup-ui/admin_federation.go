package setupui

import (
	"context"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/status"
	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// The federation page (issue 14: "settings in the appliance config; the
// admin pages show them once they exist"): whether members may chat with
// people on other servers at all (config.Federation.Off), the servers the
// box never talks to (Block) and, if the admin wants it, the only ones it
// talks to (Allow); and whether other servers reach the box, in netconf's
// words (its federation self-test), as the health page shows the rest.
// Saving writes the config, asks netconf to reload (it maps or unmaps the
// s2s port and redoes the self-test) and the chat server to apply the
// policy (Admin.Federation).

// federationCheck is the ID of netconf's federation self-test
// (netconf.CheckFederation; not imported: setup-ui reads netconf's report
// through its socket only).
const federationCheck = "selftest/federation"

// maxFederationDomains bounds each list (the form's body is bounded too).
const maxFederationDomains = 200

type federationData struct {
	Nav   template.HTML
	On    bool
	Block string // one domain a line, as the form shows it
	Allow string
	Check *status.Check // netconf's self-test; nil: no report
	// NoReport: netconf did not answer.
	NoReport bool
	// HomeOnly: the box has no name on the internet, so netconf does not
	// test (and other servers cannot reach it).
	HomeOnly bool
	// Off: federation is off in the saved config (On is the form's
	// choice, which a refused form keeps).
	Off    bool
	Domain string
	Done   string
	Error  string
	// Later: the running chat server takes the saved settings at its next
	// start (see Done).
	Later bool
}

var federationDone = map[string]string{
	"saved":       "Saved. The chat server uses these settings now.",
	"saved-later": "Saved. The chat server uses these settings from its next start (for example after the next update or restart of the box).",
}

func (u *UI) federationData(r *http.Request, c *config.Config) federationData {
	d := federationData{Nav: adminNav("/admin/federation"), On: !c.Federation.Off, Off: c.Federation.Off,
		Block: displayList(c.Federation.Block), Allow: displayList(c.Federation.Allow)}
	if u.d.Domain != nil {
		d.Domain = u.d.Domain()
	}
	if u.d.Network != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if rep, err := u.d.Network.Status(ctx); err == nil {
			if ck, ok := rep.Get(federationCheck); ok {
				d.Check = &ck
			}
			d.HomeOnly = d.Check == nil && homeName(d.Domain)
		} else {
			d.NoReport = true
		}
	}
	return d
}

func (u *UI) federationPage(w http.ResponseWriter, r *http.Request) {
	c, err := u.d.Config.Load()
	if err != nil {
		u.d.Log.Error("admin: federation", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not read its settings. Please try again in a minute.")
		return
	}
	d := u.federationData(r, c)
	d.Done = federationDone[r.URL.Query().Get("done")]
	u.tpl.Render(w, r, http.StatusOK, "admin-federation", d)
}

func (u *UI) federationSave(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	c, err := u.d.Config.Load()
	if err != nil {
		page.Error(w, r, http.StatusInternalServerError, "The box could not read its settings. Nothing was changed.")
		return
	}
	d := u.federationData(r, c)
	d.On, d.Block, d.Allow = f.Get("federation") == "on", f.Get("block"), f.Get("allow")
	fail := func(msg string) {
		d.Error = msg + " Nothing was saved."
		u.tpl.Render(w, r, http.StatusBadRequest, "admin-federation", d)
	}
	if v := f.Get("federation"); v != "on" && v != "off" {
		fail("Please choose whether members may chat with people on other servers.")
		return
	}
	block, msg := domainList(d.Block, "list of blocked servers", d.Domain)
	if msg != "" {
		fail(msg)
		return
	}
	allow, msg := domainList(d.Allow, "list of allowed servers", d.Domain)
	if msg != "" {
		fail(msg)
		return
	}
	for _, b := range block {
		if slices.Contains(allow, b) {
			fail(b + " is in both lists. A server is either blocked or allowed; take it out of one list.")
			return
		}
	}
	fed := config.Federation{Off: !d.On, Block: block, Allow: allow}
	err = u.d.Config.Update(func(c *config.Config) error {
		c.Federation = fed
		return nil
	})
	if err != nil {
		u.d.Log.Error("admin: save federation", "err", err)
		page.Error(w, r, http.StatusInternalServerError, "The box could not save that. Nothing was changed; please try again.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if u.d.Network != nil {
		// netconf opens or closes the s2s port on the router and
		// checks again whether other servers reach the box.
		if err := u.d.Network.Reload(ctx); err != nil {
			u.d.Log.Warn("admin: federation: netconf reload", "err", err)
		}
	}
	now := false
	if apply := u.d.Admin.Federation; apply != nil {
		if now, err = apply(); err != nil {
			u.d.Log.Error("admin: federation: apply", "err", err)
		}
	}
	if now {
		back(w, r, "/admin/federation", "saved")
	} else {
		back(w, r, "/admin/federation", "saved-later")
	}
}

// domainList parses one of the page's lists: domains separated by new
// lines, commas or spaces, as ASCII (an internationalised name is
// converted with IDNA), lower case, without a trailing dot, each once.
// msg explains the first entry that is not a domain name ("" when all
// are), in words an admin can act on; what names the list and own is the
// box's own domain.
func domainList(text, what, own string) (list []string, msg string) {
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\r' || r == '\n' })
	for _, raw := range fields {
		s := strings.TrimSuffix(strings.ToLower(raw), ".")
		quoted := "“" + shorten(raw) + "” in the " + what
		switch {
		case strings.Contains(s, "@"):
			return nil, quoted + " is a chat address, not a server. Write only the part after the @, for example " + shorten(s[strings.LastIndex(s, "@")+1:]) + "."
		case strings.Contains(s, "://") || strings.Contains(s, "/"):
			return nil, quoted + " is a web address. Write only the server's name, for example example.org."
		case strings.HasPrefix(s, "*."):
			return nil, quoted + ": write the domain without “*.”; a domain covers its subdomains already."
		}
		a, err := idna.Lookup.ToASCII(s)
		if err != nil || !validDomain(a) {
			return nil, quoted + " is not a server's name. A name looks like example.org: letters, digits and hyphens, with a dot between the parts."
		}
		if own != "" && strings.EqualFold(a, own) {
			return nil, quoted + " is this box's own name."
		}
		if !slices.Contains(list, a) {
			list = append(list, a)
		}
		if len(list) > maxFederationDomains {
			return nil, "The " + what + " has more than " + strconv.Itoa(maxFederationDomains) + " servers. Block the few that bother you, or allow only the few you need."
		}
	}
	return list, ""
}

// displayList is a stored list as the page shows it: one a line, an
// internationalised name in its own letters (stored as IDNA ASCII).
func displayList(list []string) string {
	out := make([]string, len(list))
	for i, a := range list {
		if u, err := idna.Display.ToUnicode(a); err == nil {
			a = u
		}
		out[i] = a
	}
	return strings.Join(out, "\n")
}

// homeName reports a domain only the home network knows (netconf's
// self-tests skip it: nothing on the internet can reach it by that name).
func homeName(domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if !strings.Contains(domain, ".") {
		return true
	}
	for _, suf := range []string{".local", ".localhost", ".lan", ".internal", ".home.arpa"} {
		if strings.HasSuffix(domain, suf) {
			return true
		}
	}
	return false
}

// shorten bounds what the page repeats of the input.
func shorten(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}
