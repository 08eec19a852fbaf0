// Command xmppd is Hearth's XMPP server. gokrazy starts it on the device;
// `make run` starts it on a laptop with -dev.
//
//	xmppd [flags]                           serve
//	xmppd [flags] useradd NAME [PASSWORD]   create an account
//	xmppd [flags] useradd-bulk PREFIX N PW  create PREFIX1…PREFIXN (benchmarks)
//	xmppd [flags] userdel NAME              delete an account
//	xmppd [flags] invite [NAME]             create an invite link (for NAME only, if given)
//	xmppd [flags] health                    ask the running server for its health
//	xmppd [flags] export [-for ejabberd] NAME|-all  write accounts as XEP-0227 to stdout
//	xmppd [flags] import [-map-domain D] F  import an XEP-0227 document (server stopped)
//	xmppd [flags] backup -passphrase-file F -out DIR|-   the whole box, encrypted (backup.go)
//	xmppd [flags] restore -passphrase-file F FILE        put a backup in place (backup.go)
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hearthchat/hearth/appliance/backup"
	"github.com/hearthchat/hearth/appliance/clock"
	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/appliance/version"
	"github.com/hearthchat/hearth/xmppd"
	"github.com/hearthchat/hearth/xmppd/admin"
	"github.com/hearthchat/hearth/xmppd/mod/invites"
	"github.com/hearthchat/hearth/xmppd/store"
)

func main() {
	// Memory per idle session is the figure a Pi is bought on: the live
	// heap is about 10.5 KiB a session and Go's default GOGC=100 doubles
	// it as headroom. GOGC=25 measured 22.7 → 14.6 KiB RSS per idle session
	// at 5,000 sessions for about 7% fewer messages per CPU-second at
	// saturation (make bench; bench/README.md). While the server is busy
	// (allocating more than its live heap a second) it runs at GOGC=100,
	// and back at 25 once quiet: gcpolicy.go. GOGC in the environment
	// still wins.
	startGCPolicy()
	var (
		stateDir    = flag.String("state", state.DefaultDir, "state directory")
		domain      = flag.String("domain", "", "XMPP domain (default: the appliance config's)")
		c2sAddr     = flag.String("c2s", ":5222", "STARTTLS client listener address")
		c2sTLS      = flag.String("c2s-tls", ":5223", "direct TLS client listener address (XEP-0368)")
		c2sOnion    = flag.String("c2s-onion", "", "listener for c2s connections forwarded by tor from the onion service, unix:PATH or HOST:PORT (default unix:STATE/onion-c2s.sock; \"none\" for none); never treated as local")
		dev         = flag.Bool("dev", false, "laptop mode: domain hearth.localhost, loopback listeners, print an admin account")
		noShaping   = flag.Bool("no-shaping", false, "lift read-rate and connection limits (benchmarks only)")
		allowPlain  = flag.Bool("allow-plain", false, "also offer SASL PLAIN (over TLS) for clients without SCRAM")
		parkIdle    = flag.Bool("park-idle", true, "park idle sessions on one epoll poller instead of a goroutine each (-park-idle=false keeps a goroutine per session)")
		authTimeout = flag.Duration("auth-timeout", 60*time.Second, "time a connection has to authenticate and bind")
		stanzaTime  = flag.Duration("stanza-timeout", 30*time.Second, "time one stanza may take to arrive, first byte to last, after authentication")
		webAddr     = flag.String("web", "auto", "web server (setup pages) address; auto: :80 on the box, 127.0.0.1:8080 with -dev, none otherwise; \"none\" for none")
		webTLS      = flag.String("web-tls", "auto", "HTTPS address; auto: :443 on the box, none otherwise")
		reqSetup    = flag.String("require-setup", "auto", "hold logins back until the box is set up through the setup pages (true, false; auto: true on the box)")
		turnAddr    = flag.String("turn", "auto", "STUN/TURN address, UDP and TCP (calls through NAT); auto: :3478 on the box, 127.0.0.1:3478 with -dev, none otherwise; \"none\" for none")
		turnHost    = flag.String("turn-host", "", "host XEP-0215 gives members for STUN/TURN (default: the domain if it is an internet name, else the box's LAN address; 127.0.0.1 with -dev)")
		turnRelayIP = flag.String("turn-relay-ip", "", "relay address told to TURN clients (default: the home's public address from netconf, else the LAN address; 127.0.0.1 with -dev)")
		proxy65     = flag.String("proxy65", "auto", "XEP-0065 file transfer proxy (proxy.<domain>) TCP address; auto: :7777 on the box, 127.0.0.1:7777 with -dev, none otherwise; \"none\" for none")
		s2sAddr     = flag.String("s2s", "auto", "federation: inbound server-to-server address, and stanzas to other domains go out; auto: :5269 on the box, none otherwise; \"none\" for none (the config's federation section can turn it off and block domains)")
		s2sTLS      = flag.String("s2s-tls", "none", "federation: XEP-0368 direct TLS inbound address (published as _xmpps-server), \"none\" for none")
		s2sDNS      = flag.String("s2s-dns", "", "federation: ask this DNS server (HOST:PORT) instead of the system's (tests with their own zone)")
		s2sCA       = flag.String("s2s-ca", "", "federation: also trust the CA certificates in this PEM file for peers (tests)")
		s2sOnion    = flag.String("s2s-onion", "auto", "federation: listener for server-to-server connections forwarded by tor from the onion service's port 5269, unix:PATH or HOST:PORT; auto: unix:STATE/onion-s2s.sock when federation is on; \"none\" for none; never treated as local")
		torSOCKS    = flag.String("tor-socks", "auto", "federation: tor's SOCKS5 port for .onion domains, unix:PATH or HOST:PORT; auto: unix:STATE/tor/socks.sock (netconf's tor, when Tor is on) when federation is on; \"none\": onion domains cannot be reached")
		s2sLocal    = flag.Bool("s2s-allow-local", false, "federation: allow peers that resolve to loopback or this machine's addresses (tests on one machine)")
		showVersion = flag.Bool("version", false, "print the version and exit")
		debug       = flag.Bool("debug", false, "debug logging")
	)
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	dir := state.Dir(*stateDir)
	// A restore staged before a restart (the wizard's "I have a backup",
	// or `xmppd restore` while the server ran) is put in place before
	// anything reads the state; after a power cut mid-swap this finishes
	// it (appliance/backup).
	restored, err := backup.Resume(dir)
	if err != nil {
		fatal(err)
	} else if restored {
		log.Info("restored a backup")
	}
	// Before anything reads the date: a Pi starts at 1970 (no battery
	// clock); nil off the appliance.
	clk := clock.Boot(dir.Clock(), log)
	if *dev {
		if *domain == "" {
			*domain = "hearth.localhost"
		}
		if *c2sAddr == ":5222" {
			*c2sAddr = "127.0.0.1:5222"
		}
		if *c2sTLS == ":5223" {
			*c2sTLS = "127.0.0.1:5223"
		}
	}
	if *dev {
		// Record the laptop domain so that `xmppd useradd` and the other
		// programs agree with the running server.
		if _, err := os.Stat(dir.Config()); errors.Is(err, os.ErrNotExist) {
			if err := dir.Ensure(); err != nil {
				fatal(err)
			}
			cfg := config.Default()
			cfg.Domain = *domain
			if err := config.Save(dir.Config(), cfg); err != nil {
				fatal(err)
			}
		}
	}
	if *domain == "" && flag.Arg(0) != "restore" {
		cfg, err := config.Load(dir.Config())
		if err != nil {
			fatal(err)
		}
		*domain = cfg.Domain
	}
	if args := flag.Args(); len(args) > 0 {
		if err := command(dir, *domain, args); err != nil {
			fatal(err)
		}
		return
	}
	switch *c2sOnion {
	case "":
		*c2sOnion = "unix:" + dir.OnionC2S()
	case "none":
		*c2sOnion = ""
	}
	onBox := filepath.Clean(*stateDir) == state.DefaultDir
	*webAddr = pickAddr(*webAddr, onBox, ":80", *dev, "127.0.0.1:8080")
	*webTLS = pickAddr(*webTLS, onBox, ":443", false, "")
	// Not tied to -web: test harnesses move -web to a free port and expect
	// logins to work as before.
	*turnAddr = pickAddr(*turnAddr, onBox, ":3478", *dev, "127.0.0.1:3478")
	*proxy65 = pickAddr(*proxy65, onBox, ":7777", *dev, "127.0.0.1:7777")
	*s2sAddr = pickAddr(*s2sAddr, onBox, ":5269", false, "")
	// With federation on, onion federation follows Tor: netconf's tor
	// opens the SOCKS socket and forwards the onion service's 5269 to the
	// onion listener only while Tor is on (netconf/parts.go).
	*s2sOnion = pickAddr(*s2sOnion, *s2sAddr != "", "unix:"+dir.OnionS2S(), false, "")
	*torSOCKS = pickAddr(*torSOCKS, *s2sAddr != "", "unix:"+dir.TorSocks(), false, "")
	if *dev && *turnHost == "" {
		*turnHost = "127.0.0.1"
	}
	if *dev && *turnRelayIP == "" {
		*turnRelayIP = "127.0.0.1"
	}
	restart := make(chan struct{}, 1)
	requestRestart := func() {
		select {
		case restart <- struct{}{}:
		default:
		}
	}
	requireClaim := *reqSetup == "true" || *reqSetup == "auto" && onBox && *webAddr != ""
	d, err := xmppd.Start(xmppd.Options{
		Web: *webAddr, WebTLS: *webTLS, Dev: *dev, RequireClaim: requireClaim,
		State: dir, Domain: *domain, C2S: *c2sAddr, C2STLS: *c2sTLS, C2SOnion: *c2sOnion,
		NoShaping: *noShaping, AllowPlain: *allowPlain, NoParking: !*parkIdle, AuthTimout: *authTimeout, Log: log,
		StanzaTimeout: *stanzaTime,
		TURN:          xmppd.TURNOptions{Listen: *turnAddr, Host: *turnHost, RelayIP: *turnRelayIP},
		Proxy65:       *proxy65,
		Restart:       requestRestart,
		S2S:           xmppd.S2SOptions{Listen: *s2sAddr, ListenTLS: pickAddr(*s2sTLS, false, "", false, ""), Resolver: *s2sDNS, CAFile: *s2sCA, AllowLocal: *s2sLocal, Onion: *s2sOnion, TorSOCKS: *torSOCKS},
	})
	if errors.Is(err, store.ErrCorrupt) && d != nil && d.Web != nil {
		// The web server says the storage is damaged and what to do
		// (xmppd.DamagedWords); keep saying it rather than exit and be
		// restarted in a loop.
		log.Error("storage damaged: the chat does not start; the web page says what to do", "err", err)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		d.Web.Close()
		os.Exit(1)
	}
	if err != nil {
		fatal(err)
	}
	log.Info("xmppd started", "version", version.Version, "domain", d.Server.Domain, "c2s", d.C2SAddr, "c2s-tls", d.C2STLSAddr, "state", dir)
	if restored {
		go reloadNetconf(dir, log) // the restored config and onion key
	}
	schedStop := make(chan struct{})
	go backup.Schedule(schedStop, storeSource(d, dir))
	if *dev {
		devAccount(d, dir, log)
	}
	if d.SetupCode != "" && d.Web != nil {
		// The console of the box (and make run's terminal) shows how to
		// claim it, as hearth-setup.txt on the card does.
		host := "hearth.local"
		if *dev {
			host = d.Web.Addr.String()
		}
		fmt.Fprintf(os.Stderr, "\n  setup: http://%s/setup?code=%s\n\n", host, d.SetupCode)
	}
	// xmppd, the program that runs as long as the box, saves the clock
	// for the next boot (hourly, after NTP set it, at shutdown).
	clkStop, clkDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(clkDone)
		if clk != nil {
			clk.Run(clkStop, 0)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	restarting := false
	select {
	case <-sig:
	case <-restart:
		restarting = true
	}
	log.Info("shutting down", "restart", restarting)
	close(clkStop)
	close(schedStop)
	<-clkDone
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		fatal(err)
	}
	if restarting {
		reexec()
	}
}

// pickAddr resolves a listener flag's "auto" and "none".
func pickAddr(v string, onBox bool, box string, dev bool, devAddr string) string {
	switch {
	case v == "none":
		return ""
	case v != "auto":
		return v
	case onBox:
		return box
	case dev:
		return devAddr
	}
	return ""
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "xmppd:", err)
	os.Exit(1)
}

// devAccount makes sure `make run` prints an account to log in with.
func devAccount(d *xmppd.Daemon, dir state.Dir, log *slog.Logger) {
	pw := password()
	err := d.Store.CreateAccount("admin", pw, true)
	if errors.Is(err, store.ErrExists) {
		err = d.Store.SetPassword("admin", pw)
	}
	if err != nil {
		log.Error("dev account", "err", err)
		return
	}
	fmt.Fprintf(os.Stderr, "\n  Log in with any XMPP app (accept the self-signed certificate):\n"+
		"    address:  admin@%s\n    password: %s\n    server:   %s (STARTTLS) or %s (direct TLS)\n"+
		"  More accounts: go run ./cmd/xmppd -state %s useradd NAME\n\n",
		d.Server.Domain, pw, d.C2SAddr, d.C2STLSAddr, dir)
}

func password() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// adminClient talks to the running server's admin socket.
func adminClient(dir state.Dir) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", dir.AdminSocket())
		}},
	}
}

func running(dir state.Dir) bool {
	c, err := net.DialTimeout("unix", dir.AdminSocket(), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func command(dir state.Dir, domain string, args []string) error {
	switch args[0] {
	case "useradd":
		if len(args) < 2 || len(args) > 3 {
			return errors.New("usage: useradd NAME [PASSWORD]")
		}
		pw, gen := "", false
		if len(args) == 3 {
			pw = args[2]
		} else {
			pw, gen = password(), true
		}
		if err := addUser(dir, args[1], pw); err != nil {
			return err
		}
		if gen {
			fmt.Printf("%s@%s %s\n", args[1], domain, pw)
		}
		return nil
	case "useradd-bulk":
		if len(args) != 4 {
			return errors.New("usage: useradd-bulk PREFIX COUNT PASSWORD")
		}
		n, err := strconv.Atoi(args[2])
		if err != nil || n < 1 {
			return errors.New("useradd-bulk: COUNT must be a positive number")
		}
		return bulkAdd(dir, args[1], n, args[3])
	case "userdel":
		if len(args) != 2 {
			return errors.New("usage: userdel NAME")
		}
		req, _ := http.NewRequest("DELETE", "http://admin/users/"+args[1], nil)
		return call(dir, req, http.StatusNoContent)
	case "invite":
		if len(args) > 2 {
			return errors.New("usage: invite [NAME]")
		}
		req := map[string]any{"hours": 7 * 24}
		if len(args) == 2 {
			req["user"] = args[1]
		}
		body, _ := json.Marshal(req)
		var out struct {
			URI     string    `json:"uri"`
			Token   string    `json:"token"`
			Expires time.Time `json:"expires"`
		}
		if running(dir) {
			r, _ := http.NewRequest("POST", "http://admin/invites", strings.NewReader(string(body)))
			resp, err := adminClient(dir).Do(r)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("invite: %s: %s", resp.Status, b)
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return err
			}
		} else {
			if err := dir.Ensure(); err != nil {
				return err
			}
			st, err := store.Open(dir.DB())
			if err != nil {
				return err
			}
			defer st.Close()
			o := invites.Options{}
			if len(args) == 2 {
				if o.User, err = admin.NormalizeUser(args[1]); err != nil {
					return err
				}
			}
			inv, err := invites.Create(st, o)
			if err != nil {
				return err
			}
			out.URI, out.Token, out.Expires = inv.URI(domain), inv.Token, inv.Expires
		}
		fmt.Printf("%s\n(valid until %s; open it in an XMPP app such as Conversations or Monal to create the account)\n", out.URI, out.Expires.Local().Format("2 Jan 2006 15:04"))
		return nil
	case "backup":
		return backupCmd(dir, domain, args[1:])
	case "restore":
		return restoreCmd(dir, args[1:])
	case "export":
		return exportCmd(dir, domain, args[1:])
	case "import":
		return importCmd(dir, domain, args[1:])
	case "health":
		resp, err := adminClient(dir).Get("http://admin/health")
		if err != nil {
			return fmt.Errorf("health: server not reachable: %w", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		os.Stdout.Write(body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("unhealthy (%s)", resp.Status)
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func call(dir state.Dir, req *http.Request, want int) error {
	resp, err := adminClient(dir).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// addUser goes through the running server when there is one (only one
// process may open the database), else opens the database itself.
func addUser(dir state.Dir, name, pw string) error {
	user, err := admin.NormalizeUser(name)
	if err != nil {
		return err
	}
	st, err := openIdle(dir)
	if errors.Is(err, errRunning) {
		body, _ := json.Marshal(map[string]string{"user": user, "password": pw})
		req, _ := http.NewRequest("POST", "http://admin/users", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		return call(dir, req, http.StatusCreated)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	return st.CreateAccount(user, pw, false)
}

func bulkAdd(dir state.Dir, prefix string, n int, pw string) error {
	st, err := openIdle(dir)
	if errors.Is(err, errRunning) {
		for i := 1; i <= n; i++ {
			if err := addUser(dir, prefix+strconv.Itoa(i), pw); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer st.Close()
	return st.CreateAccounts(prefix, n, pw)
}
