package setupui

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/netconf/status"
	"github.com/hearthchat/hearth/setup-ui/internal/page"
)

// Step 3: how members reach the box, with netconf's live checks beside
// each choice.

// Provider is a dynamic-DNS service the wizard offers.
type Provider struct {
	ID, Name string
	// Suffix is the service's own domain under which a free name is
	// given ("dedyn.io"); "" when the club brings its own domain.
	Suffix string
	// Steps say how to get an address and a token, on a phone.
	Steps []string
	// Fields are the settings to ask for (config.Net.DNS.Settings keys).
	Fields []Field
}

// Field is one setting of a provider.
type Field struct {
	Key, Label, Hint string
	Optional         bool
}

// Providers are offered in this order; the names must match netconf's
// provider registry (netconf/dnsrec).
var Providers = []Provider{
	{ID: "desec", Name: "deSEC (free, dedyn.io)", Suffix: "dedyn.io",
		Steps: []string{
			"Open desec.io and tap “Create account”; choose “dynDNS account” and type the name you want, for example myclub.",
			"Confirm the e-mail deSEC sends you.",
			"Sign in, open “Token management”, tap “+”, name it Hearth and copy the token (it is shown only once).",
			"Here, type myclub.dedyn.io as the address and paste the token below.",
		},
		Fields: []Field{{Key: "token", Label: "deSEC token"}}},
	{ID: "duckdns", Name: "Duck DNS (free, duckdns.org)", Suffix: "duckdns.org",
		Steps: []string{
			"Open duckdns.org and sign in (with a Google, GitHub or Reddit account).",
			"Type the name you want under “sub domain” and tap “add domain”.",
			"Copy the long “token” shown at the top of the page.",
			"Here, type yourname.duckdns.org as the address and paste the token below.",
		},
		Fields: []Field{{Key: "api_token", Label: "Duck DNS token"}}},
	{ID: "cloudflare", Name: "Cloudflare (your own domain)",
		Steps: []string{
			"In the Cloudflare dashboard open “My Profile” → “API Tokens” → “Create Token”.",
			"Use the template “Edit zone DNS”, pick your domain under “Zone Resources”, and create it.",
			"Copy the token and paste it below; type your domain (or a name under it) as the address.",
		},
		Fields: []Field{{Key: "api_token", Label: "Cloudflare API token", Hint: "Needs the permission Zone → DNS → Edit"},
			{Key: "zone", Label: "Your domain at Cloudflare", Hint: "Only when the address is a name under it: club.example for chat.club.example", Optional: true}}},
	{ID: "rfc2136", Name: "Your own DNS server (RFC 2136)",
		Steps: []string{"Ask whoever runs your DNS server for a TSIG key allowed to update your domain's records."},
		Fields: []Field{
			{Key: "server", Label: "DNS server", Hint: "For example ns1.example.org:53"},
			{Key: "key_name", Label: "Key name"}, {Key: "key_alg", Label: "Key type", Hint: "For example hmac-sha256", Optional: true}, {Key: "key", Label: "Key (base64)"},
			{Key: "zone", Label: "Zone", Hint: "Only when the address is a name under your domain", Optional: true}}},
}

func providerByID(id string) *Provider {
	for i := range Providers {
		if Providers[i].ID == id {
			return &Providers[i]
		}
	}
	return nil
}

type reachData struct {
	Reach, Provider, Domain, Hostname string
	Settings                          map[string]string
	UPnP                              bool
	Providers                         []Provider
	Fingerprint                       string
	Home, Internet, Tor               []status.Check
	NoStatus                          bool
	Error                             string
	Step                              int
}

// checksFor picks the report's lines that belong beside each choice.
func checksFor(rep status.Report, prefixes ...string) []status.Check {
	var out []status.Check
	for _, c := range rep.Checks {
		for _, p := range prefixes {
			if c.ID == p || strings.HasPrefix(c.ID, p+"/") {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

func (u *UI) reachData(r *http.Request, c *config.Config) reachData {
	d := reachData{
		Reach: c.Site.Reach, Provider: c.Net.DNS.Provider, Domain: c.Domain, Hostname: c.Net.Hostname,
		Settings: map[string]string{}, UPnP: c.Net.UPnP, Providers: Providers, Step: 3,
	}
	if d.Reach == "" {
		d.Reach = "home"
	}
	if u.d.Fingerprint != nil {
		d.Fingerprint = u.d.Fingerprint()
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	rep, err := u.d.Network.Status(ctx)
	if err != nil {
		d.NoStatus = true
		return d
	}
	d.Home = checksFor(rep, "lan", "mdns")
	d.Internet = checksFor(rep, "router", "mapping", "external", "dns", "cert", "selftest")
	d.Tor = checksFor(rep, "onion")
	return d
}

func (u *UI) reachForm(w http.ResponseWriter, r *http.Request) {
	c, err := u.d.Config.Load()
	if err != nil {
		page.Error(w, r, http.StatusInternalServerError, "The box could not read its settings.")
		return
	}
	u.tpl.Render(w, r, http.StatusOK, "setup-reach", u.reachData(r, c))
}

// validDomain is a loose check: labels of letters, digits and hyphens.
func validDomain(s string) bool {
	if len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func (u *UI) reachSubmit(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	c, err := u.d.Config.Load()
	if err != nil {
		page.Error(w, r, http.StatusInternalServerError, "The box could not read its settings.")
		return
	}
	data := u.reachData(r, c)
	data.Reach, data.UPnP = f.Get("reach"), f.Get("upnp") == "yes"
	fail := func(code int, msg string) {
		data.Error = msg
		u.tpl.Render(w, r, code, "setup-reach", data)
	}
	// The running server's domain is the one addresses have now (a
	// -domain flag may differ from the file).
	current := u.d.Domain()
	domain := current
	var dns config.DNS
	switch data.Reach {
	case "home":
		// A name only the home network knows; an internet name chosen
		// before goes back to the box's own.
		if !strings.HasSuffix(domain, ".local") && !strings.HasSuffix(domain, ".localhost") {
			domain = c.Net.Hostname + ".local"
		}
	case "tor":
		// The onion name is the box's own; the domain stays as it is.
	case "internet":
		p := providerByID(f.Get("provider"))
		if p == nil {
			fail(http.StatusBadRequest, "Please pick the service that gives the box its address.")
			return
		}
		data.Provider = p.ID
		name := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(f.Get("domain")), "."))
		if p.Suffix != "" && !strings.Contains(name, ".") && name != "" {
			name += "." + p.Suffix
		}
		data.Domain = name
		if !validDomain(name) || (p.Suffix != "" && !strings.HasSuffix(name, "."+p.Suffix)) {
			fail(http.StatusBadRequest, "Please type the address the service gave you, for example myclub."+orDefault(p.Suffix, "example.org")+".")
			return
		}
		dns = config.DNS{Provider: p.ID, Settings: map[string]string{}}
		for _, fl := range p.Fields {
			v := strings.TrimSpace(f.Get("s_" + p.ID + "_" + fl.Key))
			if v == "" && fl.Optional {
				continue
			}
			if v == "" {
				fail(http.StatusBadRequest, "Please fill in “"+fl.Label+"”.")
				return
			}
			dns.Settings[fl.Key] = v
		}
		if p.ID == "duckdns" {
			// Duck DNS's zone is the one name itself.
			dns.Settings["zone"] = name
		}
		domain = name
	default:
		fail(http.StatusBadRequest, "Please choose one of the three ways.")
		return
	}
	if domain != current {
		// Addresses are user@domain: a new domain changes everybody's.
		people, err := u.d.Accounts.People()
		if err != nil {
			page.Error(w, r, http.StatusInternalServerError, "The box could not count its members.")
			return
		}
		if people > 1 {
			fail(http.StatusConflict, "The chat already has members. Changing the address now would change everybody's address and their apps would stop working, so the box keeps the address "+current+".")
			return
		}
	}
	err = u.d.Config.Update(func(c *config.Config) error {
		c.Site.Reach = data.Reach
		c.Domain = domain
		c.Net.UPnP = data.UPnP
		c.Net.Tor = data.Reach == "tor"
		c.Net.ACME.Enabled = data.Reach == "internet"
		c.Net.DNS = dns
		return nil
	})
	if err != nil {
		u.d.Log.Error("setup: save reach", "err", err)
		fail(http.StatusInternalServerError, "The box could not save this. Please try again.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := u.d.Network.Reload(ctx); err != nil {
		u.d.Log.Warn("setup: netconf reload", "err", err)
	}
	http.Redirect(w, r, "/setup/invite", http.StatusSeeOther)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
