// Package xmppd assembles the XMPP server: storage, the hub, the feature
// modules, the listeners and the local admin API.
package xmppd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/admin"
	"github.com/hearthchat/hearth/xmppd/c2s"
	"github.com/hearthchat/hearth/xmppd/mod/socks5"
	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/tlsconf"
	"github.com/hearthchat/hearth/xmppd/turn"
	"github.com/hearthchat/hearth/xmppd/web"
	"github.com/hearthchat/hearth/xmppd/webchat"
)

// Options configure a server.
type Options struct {
	State  state.Dir
	Domain string
	C2S    string // STARTTLS listener address; "" for none
	C2STLS string // direct TLS listener address; "" for none
	// C2SOnion is where tor forwards the onion service's c2s port:
	// "unix:PATH" or a loopback address of its own; "" for none.
	C2SOnion   string
	NoShaping  bool // lift rate and connection limits (benchmarks)
	AllowPlain bool // offer SASL PLAIN over TLS for old clients
	NoParking  bool // keep a goroutine per idle session (no epoll parking)
	AuthTimout time.Duration
	// StanzaTimeout bounds one stanza's arrival after authentication
	// (0: c2s's default, 30 s).
	StanzaTimeout time.Duration
	// C2STune, when set, adjusts the c2s configuration last (tests).
	C2STune func(*c2s.Config)
	// Web is the web server's plain-HTTP address (":80"; "" for none) and
	// WebTLS its HTTPS address ("" for none); see xmppd/web, webdeps.go.
	Web, WebTLS string
	// RequireClaim holds every login but the health check's back until
	// the box is claimed (config.Claimed) through the setup pages. On by
	// default only on the box (cmd/xmppd -require-setup), where the setup
	// pages run: elsewhere nothing could claim it.
	RequireClaim bool
	// Dev is laptop mode: the web server also answers to localhost.
	Dev bool
	// TURN is the calls relay and its XEP-0215 advertisement (turndeps.go).
	TURN TURNOptions
	// Proxy65 is the XEP-0065 bytestreams proxy's TCP address (":7777";
	// "" for none; proxydeps.go).
	Proxy65 string
	// S2S is federation (mods_s2s.go); off unless set.
	S2S S2SOptions
	// Restart, when set, stops the server and starts it again (cmd/xmppd:
	// shut down, then exec itself); the restore page calls it after a
	// backup was staged, so that the swap happens before anything opens
	// the state (appliance/backup.Resume). Nil: the page asks for a restart.
	Restart func()
	Log     *slog.Logger
}

// Daemon is a running server.
type Daemon struct {
	Server *server.Server
	Store  *store.Store
	C2S    *c2s.C2S
	Certs  *tlsconf.Certs
	opts   Options

	lns   []net.Listener
	admin *http.Server
	wg    sync.WaitGroup
	// C2SAddr is the bound STARTTLS address (useful with port 0).
	C2SAddr, C2STLSAddr, C2SOnionAddr net.Addr

	healthPass string

	// Web is the one HTTP server (nil without Options.Web); SetupCode
	// claims the box (setup-ui) until config.Claimed.
	Web        *web.Server
	SetupCode  string
	certsReady atomic.Pointer[tlsconf.Certs]
	// removals counts down removed members' grace (removals.go).
	removals *removals
	// ChatHandoffs takes a member who just registered on the invite page
	// into /chat/ logged in (xmppd/webchat/handoff.go: Put, Redirect).
	ChatHandoffs webchat.Handoffs
	// TURN is the STUN/TURN server (nil when off; turndeps.go).
	TURN *turn.Server
	// Proxy is the bytestreams proxy (nil when off; proxydeps.go).
	Proxy *socks5.Proxy
	s2s   s2sState   // federation (mods_s2s.go)
	disk  *diskWatch // storage forecast (diskwatch.go)
}

// DamagedWords is what the box's page says when the database file fails
// its page check at start (store.ErrCorrupt).
const DamagedWords = "The chat's storage on this box is damaged (its memory card may be failing), so the chat does not start rather than make it worse. " +
	"Nothing has been deleted. To get the chat back: flash a new memory card with Hearth, start the box with it, and choose \"I have a backup\" in its setup; " +
	"the members' apps reconnect by themselves afterwards. Without a backup, keep this card: the file can be examined on a computer."

// Start opens storage, registers the modules and starts listening. When
// the database is damaged (store.ErrCorrupt) it returns the error and a
// Daemon whose web server says so (Web.Broken); only Web is set then, and
// Close it when done.
func Start(opts Options) (*Daemon, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if err := opts.State.Ensure(); err != nil {
		return nil, err
	}
	d := &Daemon{opts: opts}
	// The web listener first: port 80 answers (a "starting" page) within
	// a second of power-on, while storage may take longer to open.
	if err := d.startWeb(); err != nil {
		return nil, err
	}
	st, err := d.openStore()
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) && d.Web != nil {
			// The page says so instead of the box restarting xmppd in a
			// loop behind a "starting" page (cmd/xmppd keeps serving it).
			d.Web.Broken(DamagedWords)
			return d, err
		}
		if d.Web != nil {
			d.Web.Close()
		}
		return nil, err
	}
	d.Store = st
	if d.Web != nil {
		d.Web.Waiting("the chat service to start")
	}
	fail := func(err error) (*Daemon, error) {
		d.closeListeners()
		if d.Web != nil {
			d.Web.Close()
		}
		st.Close()
		return nil, err
	}
	if d.SetupCode, err = loadSetupCode(opts.State); err != nil {
		return fail(err)
	}
	srv, err := server.New(opts.Domain, st, opts.Log)
	if err != nil {
		return fail(fmt.Errorf("domain %q: %w", opts.Domain, err))
	}
	d.Server = srv
	registerModules(srv)
	d.configureArchive()      // mods_mam.go
	d.configureRoomArchives() // mods_muc.go
	d.removals = newRemovals(srv, opts.Log)
	srv.OnAccountDeleted(webCircles{srv}.forget)
	d.configureInvites() // webinvites.go
	d.configureContact() // contactdeps.go
	certs, err := tlsconf.Load(opts.State.TLS(), []string{srv.Domain, "groups." + srv.Domain, "upload." + srv.Domain})
	if err != nil {
		return fail(err)
	}
	d.Certs = certs
	d.certsReady.Store(certs) // the web server's HTTPS listener may use it now
	if certs.Recovered != nil {
		opts.Log.Warn("the certificate could not be used; serving a self-signed one until a new one is issued", "err", certs.Recovered)
	}
	cfg := c2s.DefaultConfig(srv, certs, opts.Log)
	if opts.AuthTimout > 0 {
		cfg.AuthTimeout = opts.AuthTimout
	}
	if opts.StanzaTimeout > 0 {
		cfg.StanzaTimeout = opts.StanzaTimeout
	}
	if opts.NoShaping {
		cfg.ReadRate, cfg.MaxUnauthPerIP, cfg.MaxUnauthOnion = 0, 0, 0
	}
	cfg.AllowPlain = opts.AllowPlain
	cfg.ParkIdle = !opts.NoParking
	// SCRAM's made-up salts for unknown names are keyed with a secret of
	// this box's, so they stay the same across attempts and restarts.
	if cfg.SaltKey, err = st.Secret("scram-salt"); err != nil {
		return fail(err)
	}
	if opts.RequireClaim {
		// Before setup is complete nobody logs in (but the box's own
		// health check, which the updater depends on).
		var done atomic.Bool // claiming is for good: stop reading the file
		cfg.LoginAllowed = func(user string) bool {
			if user == HealthUser || done.Load() {
				return true
			}
			if claimed(opts.State) {
				done.Store(true)
				return true
			}
			return false
		}
	}
	// A member an admin removed cannot log in during the grace period
	// (removals.go), setup pages or not.
	held := cfg.LoginAllowed
	cfg.LoginAllowed = func(user string) bool {
		if _, ok := removing(st, user); ok {
			return false
		}
		return held == nil || held(user)
	}
	if opts.C2STune != nil {
		opts.C2STune(&cfg)
	}
	// Federation before the clients' listeners: a member's first message
	// to another server must find it running (it bounced with
	// remote-server-not-found when sent in between).
	if err := d.startS2S(); err != nil { // mods_s2s.go
		return fail(err)
	}
	d.C2S = c2s.New(cfg)
	d.mountWebSocket(cfg) // webws.go
	for _, l := range []struct {
		addr  string
		serve func(net.Listener) error
		out   *net.Addr
	}{
		{opts.C2S, func(ln net.Listener) error { return d.C2S.Serve(ln, false) }, &d.C2SAddr},
		{opts.C2STLS, func(ln net.Listener) error { return d.C2S.Serve(ln, true) }, &d.C2STLSAddr},
		{opts.C2SOnion, d.C2S.ServeOnion, &d.C2SOnionAddr},
	} {
		if l.addr == "" {
			continue
		}
		network, addr := "tcp", l.addr
		if p, ok := strings.CutPrefix(addr, "unix:"); ok {
			// Left by a killed process; the store's lock means we own it.
			network, addr = "unix", p
			os.Remove(p)
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			return fail(fmt.Errorf("c2s listen %s: %w", l.addr, err))
		}
		*l.out = ln.Addr()
		d.lns = append(d.lns, ln)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			l.serve(ln)
		}()
	}
	if err := d.startAdmin(); err != nil {
		return fail(err)
	}
	if err := d.mountPages(); err != nil {
		return fail(err)
	}
	d.mountChat()
	// Chat matters more than calls: a relay that cannot start (port 3478
	// taken) is logged and the box runs without it; XEP-0215 then lists
	// nothing and apps try direct connections.
	if err := d.startTURN(); err != nil {
		d.opts.Log.Error("calls relay (TURN) not started", "err", err)
	}
	if err := d.startProxy(); err != nil {
		d.opts.Log.Error("file transfer proxy not started", "err", err)
	}
	if err := d.startUpload(); err != nil { // mods_upload.go; chat goes on without it
		d.opts.Log.Error("file upload not started", "err", err)
	}
	d.removals.start(removalTick)
	d.offerDefaultRoomToAll() // circlerooms.go
	d.startDiskWatch()
	return d, nil
}

// mountChat serves the browser chat at /chat/ (xmppd/webchat); it talks
// to the box over the WebSocket at /xmpp-websocket (xmppd/ws).
func (d *Daemon) mountChat() {
	if d.Web == nil {
		return
	}
	h := webchat.Handler(webchat.Options{
		Domain:   func() string { return d.Server.Domain },
		Upload:   d.chatUpload,
		Handoffs: &d.ChatHandoffs,
		Log:      d.opts.Log,
	})
	d.Web.Handle(webchat.Prefix, h)
	d.Web.Handle(strings.TrimSuffix(webchat.Prefix, "/"), h)
}

func (d *Daemon) startAdmin() error {
	path := d.opts.State.AdminSocket()
	// A socket left by a killed process would make Listen fail; only one
	// xmppd runs per state directory (bbolt's lock above guarantees it).
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	os.Chmod(path, 0o600)
	d.lns = append(d.lns, ln)
	d.admin = &http.Server{Handler: admin.Handler(admin.Deps{
		Server: d.Server, Store: d.Store, LoginCheck: d.loginCheck,
	}), ReadHeaderTimeout: 10 * time.Second}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			d.opts.Log.Error("admin api", "err", err)
		}
	}()
	return nil
}

func (d *Daemon) closeListeners() {
	for _, ln := range d.lns {
		ln.Close()
	}
}

// Shutdown stops accepting, sends system-shutdown to every client, and
// closes storage once their queues are flushed.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.closeListeners()
	if d.Web != nil {
		d.Web.Shutdown(ctx)
	}
	if d.admin != nil {
		d.admin.Shutdown(ctx)
	}
	if d.C2S != nil {
		timeout := 10 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		d.C2S.Shutdown(timeout)
	}
	d.stopS2S() // queued messages stay stored for the next start; presence and iqs bounce while the router still runs
	// Sessions still waiting for resumption (XEP-0198) end now: what they
	// hold goes to offline storage before the database closes.
	d.Server.Router.All(d.Server.EndSession)
	// Messages that closing sessions without stream management could not
	// write are being routed again (to storage): let them land first.
	if !d.Server.WaitRedeliveries(5 * time.Second) {
		d.Server.Log.Warn("shutdown: messages still being re-routed when storage closed")
	}
	d.removals.close()
	d.stopDiskWatch()
	d.stopUpload()
	if d.TURN != nil {
		d.TURN.Close()
	}
	if d.Proxy != nil {
		d.Proxy.Close()
	}
	d.wg.Wait()
	return d.Store.Close()
}
