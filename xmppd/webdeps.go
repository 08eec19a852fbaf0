package xmppd

// The web server and the adapters through which the setup pages
// (setup-ui) reach accounts, invites, the config and netconf. setup-ui
// never opens the database: it gets these interfaces.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/netconf/status"
	setupui "github.com/hearthchat/hearth/setup-ui"
	"github.com/hearthchat/hearth/xmppd/admin"
	"github.com/hearthchat/hearth/xmppd/sasl"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/web"
)

// startWeb binds the web listener first thing (the starting page answers
// while storage opens).
func (d *Daemon) startWeb() error {
	if d.opts.Web == "" {
		return nil
	}
	o := web.Options{
		Addr: d.opts.Web, TLSAddr: d.opts.WebTLS, Dev: d.opts.Dev,
		// HTTPS binds now too but has a certificate only once tlsconf
		// loaded it (a handshake before that fails; port 80 answers).
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := d.certsReady.Load(); c != nil {
				return c.Get(h)
			}
			return nil, errors.New("starting: no certificate loaded yet")
		}},
		PublicCert:    d.publicCert,
		Domain:        func() string { return d.opts.Domain },
		Hosts:         cached(5*time.Second, d.webHosts),
		ACMEChallenge: state.ACMEChallengeAddr,
		LAN:           lanAddrs,
		Log:           d.opts.Log,
	}
	var err error
	d.Web, err = web.Start(o)
	if err != nil {
		return err
	}
	d.Web.Waiting("its storage to open")
	return nil
}

// mountPages installs setup-ui once the server is up.
func (d *Daemon) mountPages() error {
	if d.Web == nil {
		return nil
	}
	ui, err := setupui.New(setupui.Deps{
		Accounts:    webAccounts{d.Store, d.Server},
		Invites:     webInvites{d}, // webinvites.go
		Config:      &webConfig{path: d.opts.State.Config()},
		Network:     netconfClient(d.opts.State),
		SetupCode:   func() string { return d.SetupCode },
		Fingerprint: d.fingerprint,
		Domain:      func() string { return d.Server.Domain },
		Admin:       d.adminDeps(), // admindeps.go
		Backup:      webBackup{d},  // webbackup.go
		Log:         d.opts.Log,
	})
	if err != nil {
		return fmt.Errorf("setup pages: %w", err)
	}
	d.Web.HandleStream(setupui.RestorePath, ui.RestoreUpload())
	// Forms that carry an account file (setup-ui/account_data.go) bound
	// their bodies themselves; every other form there is bounded by
	// page.Protect.
	d.Web.HandleStream("/i/", ui)
	d.Web.HandleStream(setupui.AdminImportPath, ui)
	d.Web.SetApp(ui)
	return nil
}

// webHosts are the names the box answers to besides its domain and
// addresses: its mDNS name and its onion name (from netconf's report).
func (d *Daemon) webHosts() []string {
	hosts := []string{"hearth.local"}
	if c, err := config.Load(d.opts.State.Config()); err == nil {
		hosts = append(hosts, c.Domain, c.Net.Hostname+".local")
	}
	if b, err := os.ReadFile(filepath.Join(d.opts.State.Status(), "netconf.json")); err == nil {
		var rep status.Report
		if json.Unmarshal(b, &rep) == nil {
			if c, ok := rep.Get("onion"); ok && c.Detail["address"] != "" {
				hosts = append(hosts, c.Detail["address"])
			}
			if c, ok := rep.Get("mdns"); ok && c.Detail["name"] != "" {
				hosts = append(hosts, c.Detail["name"])
			}
		}
	}
	return hosts
}

// cached calls f at most once per period: the host names come from two
// files, and the allowlist is asked on every request.
func cached(period time.Duration, f func() []string) func() []string {
	var mu sync.Mutex
	var last time.Time
	var v []string
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		if v == nil || time.Since(last) > period {
			v, last = f(), time.Now()
		}
		return v
	}
}

// lanAddrs are the box's non-loopback IPv4 addresses (for the starting
// page: phones that cannot resolve hearth.local).
func lanAddrs() []string {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	return out
}

// fingerprint is the SHA-256 of the certificate the box serves, in the
// colon form apps show.
func (d *Daemon) fingerprint() string {
	certs := d.certsReady.Load()
	if certs == nil {
		return ""
	}
	c, err := certs.Get(nil)
	if err != nil || c == nil || len(c.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(c.Certificate[0])
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String()
}

// publicCert reports whether the served certificate comes from a CA (not
// self-signed).
func (d *Daemon) publicCert() bool {
	certs := d.certsReady.Load()
	if certs == nil {
		return false
	}
	c, err := certs.Get(nil)
	if err != nil || c == nil || len(c.Certificate) == 0 {
		return false
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	return err == nil && !bytes.Equal(leaf.RawIssuer, leaf.RawSubject)
}

type webAccounts struct {
	st  *store.Store
	srv *server.Server // nil in tests of the password check alone
}

func (a webAccounts) Create(user, password string, isAdmin bool) (string, error) {
	u, err := admin.NormalizeUser(user)
	if err != nil || strings.HasPrefix(u, "_") {
		return "", setupui.ErrBadName // "_" names are the box's own (_health)
	}
	err = a.st.CreateAccount(u, password, isAdmin)
	if errors.Is(err, store.ErrExists) {
		return "", setupui.ErrExists
	}
	if err == nil && a.srv != nil {
		// The wizard's first admin is a member like any other: the
		// modules' welcome (the club room's bookmark) must not wait for
		// the next restart.
		server.AccountRegistered.Fire(a.srv, server.Registration{User: u})
	}
	return u, err
}

func (a webAccounts) Check(user, password string) (bool, bool) {
	u, err := admin.NormalizeUser(user)
	if err != nil || strings.HasPrefix(u, "_") {
		return false, false
	}
	acc, err := a.st.Account(u)
	if _, gone := removing(a.st, u); gone && err == nil {
		err = store.ErrNotFound // removed by an admin: no login (removals.go)
	}
	if err != nil {
		// Spend the same work as a real check: the answer's time must
		// not tell which names exist.
		sasl.Derive(sha256.New, password, make([]byte, 16), store.ScramIterations)
		return false, false
	}
	if len(acc.SHA256.StoredKey) == 0 {
		// Imported with SCRAM-SHA-1 verifiers only: this login completes
		// them (store.CompleteVerifiers), so apps using SCRAM-SHA-256
		// work from now on.
		ok, err := a.st.CompleteVerifiers(u, password)
		if err != nil && a.srv != nil {
			a.srv.Log.Error("completing an imported account's verifiers", "user", u, "err", err)
		}
		return ok, ok && acc.Admin
	}
	k, err := sasl.Derive(sha256.New, password, acc.Salt, acc.Iter)
	if err != nil {
		return false, false
	}
	return subtle.ConstantTimeCompare(k.StoredKey, acc.SHA256.StoredKey) == 1, acc.Admin
}

func (a webAccounts) People() (int, error) {
	users, err := a.st.Users()
	n := 0
	for _, u := range users {
		if !strings.HasPrefix(u, "_") {
			n++
		}
	}
	return n, err
}

// webConfig reads and writes the appliance config file; Update holds a
// lock so two pages saving at once do not lose each other's change.
type webConfig struct {
	path string
	mu   sync.Mutex
}

func (c *webConfig) Load() (*config.Config, error) { return config.Load(c.path) }

func (c *webConfig) Update(f func(*config.Config) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cfg, err := config.Load(c.path)
	if err != nil {
		return err
	}
	if err := f(cfg); err != nil {
		return err
	}
	return config.Save(c.path, cfg)
}

// netconfAPI talks to netconf's socket (STATE/netconf.sock).
type netconfAPI struct{ c *http.Client }

func netconfClient(dir state.Dir) netconfAPI {
	return netconfAPI{&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", dir.NetconfSocket())
		}}}}
}

func (n netconfAPI) Status(ctx context.Context) (status.Report, error) {
	var rep status.Report
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://netconf/status", nil)
	resp, err := n.c.Do(req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("netconf status: %s", resp.Status)
	}
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}

func (n netconfAPI) Reload(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://netconf/reload", nil)
	resp, err := n.c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// loadSetupCode reads the box's setup code, making one on a box that has
// none, while the box is unclaimed ("" once claimed: the code is spent).
func loadSetupCode(dir state.Dir) (string, error) {
	if claimed(dir) {
		return "", nil
	}
	code, _, err := setupui.LoadOrCreateCode(dir.SetupCode())
	return code, err
}

// claimed reads config.Claimed (the file is small; this runs once per
// login attempt while the box is unclaimed).
func claimed(dir state.Dir) bool {
	c, err := config.Load(dir.Config())
	return err == nil && c.Claimed
}
