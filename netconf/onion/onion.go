// Package onion publishes the box as a Tor onion service (v3), so members
// can reach it even when the router cannot be opened or the line is behind
// carrier-grade NAT.
//
// It runs Debian's tor as a child process and drives it over tor's control
// protocol (github.com/cretz/bine's control package). The service's key
// lives in the state directory (state.Dir.Tor()/onion, files 0600, folders
// 0700, in tor's own HiddenServiceDir format), so the address survives
// restarts, reboots and updates. tor's data directory is
// state.Dir.Tor()/data.
//
// tor's life is tied to ours: it is started with __OwningControllerProcess
// set to our PID, and once we are connected we send TAKEOWNERSHIP, so tor
// exits as soon as our control connection closes — also when we are killed.
//
// Onion traffic arrives on the Targets in Options: xmppd gives it its own
// loopback listeners, so a connection over Tor is never mistaken for a
// local one and gets its own rate-limit bucket.
//
// With Options.SocksSocket, tor also takes SOCKS5 connections on a unix
// socket in its private directory, for onion addresses only
// (OnionTrafficOnly: tor refuses other names and IPs, and resolves
// nothing): xmppd's way to .onion domains for federation. tor opens it
// only while its network is on.
//
// Status check (ID "onion", see netconf/status):
//
//   - Off: the onion address is turned off (Disabled) or stopped.
//   - Pending: tor is starting, or the service exists but is not published
//     yet (Detail "published" = "no"; while networking is disabled it stays
//     so, and the message says so).
//   - OK: the service descriptor was uploaded to the Tor network:
//     "Reachable over Tor at xxx.onion".
//   - Warn: it was published, but tor has since lost the Tor network
//     (tor reconnects by itself; back to OK when it has).
//   - Error: tor is missing, failed, or could not connect to the Tor network
//     within BootstrapTimeout; Run retries with back-off meanwhile.
//
// Detail keys: "address" (xxx.onion, as soon as the key exists),
// "published" ("yes"/"no"), "network" ("on"/"off"/"down"), "bootstrap" (percent),
// "tor" (tor's version), "error" (the technical reason of an Error),
// "retry" (how long until the next attempt after an Error).
package onion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cretz/bine/control"

	"github.com/hearthchat/hearth/netconf/status"
)

// CheckID is the status check this package reports.
const CheckID = "onion"

const title = "Onion address (Tor)"

// Port is one port of the onion service: connections to Virtual on the
// .onion address are passed to Target ("127.0.0.1:5322", or a unix socket
// "unix:/run/hearth/onion-c2s.sock").
type Port struct {
	Virtual int
	Target  string
}

// Options configure the onion service.
type Options struct {
	// TorExe is the command that runs tor, with any prefix it needs (the
	// image's dynamic loader, see BundleCommand). Empty: the bundle in
	// BundleDir if present, else `tor` on PATH.
	TorExe []string
	// DataDir is the state directory's tor folder (state.Dir.Tor()).
	DataDir string
	// Ports are the service's ports; at least one.
	Ports    []Port
	Reporter status.Reporter
	// BootstrapTimeout is how long tor may take to connect to the Tor
	// network before we report an Error and restart it. Default 5 minutes.
	BootstrapTimeout time.Duration
	// DisableNetwork keeps tor offline: the service is created but never
	// published. For tests, which must not reach the Tor network.
	DisableNetwork bool
	// StartTimeout bounds tor's start-up (up to its control socket and
	// each setup command). Default 1 minute.
	StartTimeout time.Duration
	// RetryMin and RetryMax bound the back-off between attempts after a
	// failure. Defaults 10 seconds and 15 minutes.
	RetryMin, RetryMax time.Duration
	// Log receives tor's own output; nil discards it.
	Log io.Writer
	// SocksSocket, when set, is a unix socket where tor takes SOCKS5
	// connections to .onion addresses only (xmppd's federation with onion
	// domains; state.Dir.TorSocks()). It must be inside DataDir (tor
	// refuses a socket in a directory others can enter). tor opens it only
	// while its network is on. "": no SOCKS port.
	SocksSocket string
}

// Service is the onion service. Create it with New and run it with Run
// (once at a time: two tors cannot share the data directory).
type Service struct {
	opts Options

	mu      sync.Mutex
	address string
	tor     *torProcess // current tor, for tests
}

// New checks opts and fills in defaults.
func New(opts Options) (*Service, error) {
	if opts.DataDir == "" {
		return nil, errors.New("onion: DataDir is required")
	}
	if opts.Reporter == nil {
		return nil, errors.New("onion: Reporter is required")
	}
	if len(opts.Ports) == 0 {
		return nil, errors.New("onion: no ports")
	}
	for _, p := range opts.Ports {
		if p.Virtual < 1 || p.Virtual > 65535 {
			return nil, fmt.Errorf("onion: virtual port %d out of range", p.Virtual)
		}
		if err := checkTarget(p.Target); err != nil {
			return nil, fmt.Errorf("onion: target %q for port %d: %w", p.Target, p.Virtual, err)
		}
	}
	if opts.SocksSocket != "" {
		if err := checkSocksSocket(opts.SocksSocket, opts.DataDir); err != nil {
			return nil, fmt.Errorf("onion: SOCKS socket %q: %w", opts.SocksSocket, err)
		}
	}
	if opts.BootstrapTimeout <= 0 {
		opts.BootstrapTimeout = 5 * time.Minute
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = time.Minute
	}
	if opts.RetryMin <= 0 {
		opts.RetryMin = 10 * time.Second
	}
	if opts.RetryMax < opts.RetryMin {
		opts.RetryMax = max(15*time.Minute, opts.RetryMin)
	}
	return &Service{opts: opts}, nil
}

// checkTarget accepts what ADD_ONION does and we want: a numeric ip:port
// or an absolute unix socket path (unix:/run/…).
func checkTarget(t string) error {
	if path, ok := strings.CutPrefix(t, "unix:"); ok {
		if !filepath.IsAbs(path) || strings.ContainsAny(path, " \t\"") {
			return errors.New("must be unix:/absolute/path without spaces")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(t)
	if err != nil || net.ParseIP(host) == nil {
		return errors.New("must be ip:port or unix:/path")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("port out of range")
	}
	return nil
}

// checkSocksSocket accepts an absolute socket path short enough for
// sockaddr_un, inside the private data directory.
func checkSocksSocket(path, dataDir string) error {
	if !filepath.IsAbs(path) || strings.ContainsAny(path, " \t\"") {
		return errors.New("must be an absolute path without spaces")
	}
	if len(path) >= 104 {
		return errors.New("too long for a unix socket")
	}
	rel, err := filepath.Rel(dataDir, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("must be inside %s", dataDir)
	}
	return nil
}

// Address is the service's xxx.onion address once the key is loaded (it
// does not change after that), or "" before. Whether it is published yet
// is in the status check.
func (s *Service) Address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.address
}

// Disabled reports the check as Off, for netconf to call when the admin has
// not turned the onion address on.
func Disabled(r status.Reporter) {
	r.Set(status.Check{ID: CheckID, Title: title, Level: status.Off,
		Message: "The onion address is turned off."})
}

// Run keeps the onion service up until ctx ends, restarting tor with
// back-off after failures, then stops tor. It returns nil when ctx ends;
// failures are reported, not returned, so the rest of the appliance keeps
// working without tor.
func (s *Service) Run(ctx context.Context) error {
	delay := s.opts.RetryMin
	for {
		healthy, err := s.runOnce(ctx)
		if ctx.Err() != nil {
			s.opts.Reporter.Set(s.check(status.Off, "The onion address is stopped.", "", nil))
			return nil
		}
		// A run that got published was a success: start the back-off over.
		if healthy {
			delay = s.opts.RetryMin
		}
		s.reportFailure(err, delay)
		select {
		case <-ctx.Done():
			s.opts.Reporter.Set(s.check(status.Off, "The onion address is stopped.", "", nil))
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, s.opts.RetryMax)
	}
}

// failure is an error with the plain words to show for it.
type failure struct {
	message, action string
	err             error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func (s *Service) reportFailure(err error, retry time.Duration) {
	var f *failure
	if !errors.As(err, &f) {
		f = &failure{
			message: "Tor stopped working, so the onion address cannot be reached.",
			action:  "Hearth tries again by itself. If this stays, restart the box; everything else keeps working without Tor.",
			err:     err,
		}
	}
	detail := map[string]string{"retry": retry.String()}
	if err != nil {
		detail["error"] = err.Error()
	}
	s.opts.Reporter.Set(s.check(status.Error, f.message, f.action, detail))
}

// check builds the status check, adding the address when known.
func (s *Service) check(level status.Level, msg, action string, detail map[string]string) status.Check {
	if detail == nil {
		detail = map[string]string{}
	}
	if a := s.Address(); a != "" {
		detail["address"] = a
	}
	return status.Check{ID: CheckID, Title: title, Level: level, Message: msg, Action: action, Detail: detail}
}

// runOnce starts tor, adds the service and watches it until tor fails or ctx
// ends. healthy reports whether the service got published.
func (s *Service) runOnce(ctx context.Context) (healthy bool, err error) {
	r := s.opts.Reporter
	keyDirPath := keyDir(s.opts.DataDir)
	if err := ensurePrivateDir(s.opts.DataDir); err != nil {
		return false, &failure{"Hearth cannot write the onion address's files.",
			"Restart the box. If this stays, the memory card may be full or failing.", err}
	}
	k, _, err := loadOrCreateKey(keyDirPath)
	if errors.Is(err, ErrKeyDamaged) {
		return false, &failure{"The file that holds the onion address's key is damaged, so Hearth cannot use the address.",
			"Restore Hearth from a backup. Hearth will not make a new key by itself, because that would change the onion address everyone uses.", err}
	}
	if err != nil {
		return false, &failure{"Hearth cannot read or save the onion address's key.",
			"Restart the box. If this stays, the memory card may be full or failing.", err}
	}
	s.mu.Lock()
	s.address = k.Address()
	s.mu.Unlock()

	argv, err := resolveCommand(s.opts.TorExe)
	if err != nil {
		return false, &failure{"The Tor program is missing, so there is no onion address.",
			"Install a Hearth update that includes Tor, or turn the onion address off in the settings. Everything else keeps working.", err}
	}

	r.Set(s.check(status.Pending, "Starting Tor…", "", map[string]string{"published": "no"}))
	t, err := startTor(ctx, argv, s.opts.DataDir, s.opts.SocksSocket, s.opts.Log, s.opts.StartTimeout)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, &failure{"Tor did not start, so the onion address cannot be reached.",
			"Hearth tries again by itself. If this stays, install a Hearth update or turn the onion address off in the settings.", err}
	}
	s.mu.Lock()
	s.tor = t
	s.mu.Unlock()
	defer func() {
		t.stop()
		s.mu.Lock()
		s.tor = nil
		s.mu.Unlock()
	}()
	return s.serve(ctx, t, k)
}

func keyDir(dataDir string) string { return filepath.Join(dataDir, "onion") }

// serve adds the service to a running tor, turns the network on (unless
// disabled) and follows tor's events until something ends it.
func (s *Service) serve(ctx context.Context, t *torProcess, k key) (healthy bool, err error) {
	r := s.opts.Reporter
	failed := func(err error) error {
		return &failure{"Tor did not accept the onion service, so the onion address cannot be reached.",
			"Hearth tries again by itself. If this stays, install a Hearth update or turn the onion address off in the settings.", err}
	}
	detail := map[string]string{"published": "no", "network": "off"}
	if v, err := t.ctrl.GetInfo("version"); err == nil && len(v) == 1 {
		detail["tor"] = v[0].Val
	}

	// Events first, so nothing between here and the network coming up
	// is missed. bine delivers events by blocking sends: keep the channel
	// drained until the connection is gone.
	events := make(chan control.Event, 64)
	if err := t.ctrl.AddEventListener(events, control.EventCodeStatusClient, control.EventCodeHSDesc, control.EventCodeNetworkLiveness); err != nil {
		return false, failed(fmt.Errorf("onion: subscribe to tor events: %w", err))
	}

	req := &control.AddOnionRequest{
		Key: &control.ED25519Key{KeyPair: k.secret.KeyPair()},
		// Tor must not echo our key back; we already keep it.
		Flags: []string{"DiscardPK"},
	}
	for _, p := range s.opts.Ports {
		req.Ports = append(req.Ports, &control.KeyVal{Key: strconv.Itoa(p.Virtual), Val: p.Target})
	}
	resp, err := t.ctrl.AddOnion(req)
	if err != nil {
		return false, failed(fmt.Errorf("onion: ADD_ONION: %w", err))
	}
	if resp.ServiceID != k.serviceID() {
		return false, failed(fmt.Errorf("onion: tor reports service %q for our key %q", resp.ServiceID, k.serviceID()))
	}
	// Set up; from now on the connection waits as long as tor runs.
	t.conn.SetDeadline(time.Time{})

	evCtx, stopEvents := context.WithCancel(ctx)
	evErr := make(chan error, 1)
	go func() { evErr <- t.ctrl.HandleEvents(evCtx) }()
	defer func() {
		stopEvents()
		t.conn.Close()
		drain(events, 500*time.Millisecond)
	}()

	if s.opts.DisableNetwork {
		r.Set(s.check(status.Pending,
			"The onion address is made, but Tor's connection to the Tor network is switched off, so it is not published and nobody can reach it over Tor.",
			"", cloneDetail(detail)))
	} else {
		r.Set(s.check(status.Pending, "The onion address is made; Tor is connecting to the Tor network to publish it…", "", cloneDetail(detail)))
		if err := t.ctrl.SetConf(control.KeyVals("DisableNetwork", "0")...); err != nil {
			return false, failed(fmt.Errorf("onion: enable network: %w", err))
		}
		detail["network"] = "on"
		detail["bootstrap"] = "0"
	}

	var bootstrapTimeout <-chan time.Time
	if !s.opts.DisableNetwork {
		timer := time.NewTimer(s.opts.BootstrapTimeout)
		defer timer.Stop()
		bootstrapTimeout = timer.C
	}
	published := false
	for {
		select {
		case <-ctx.Done():
			return published, ctx.Err()
		case <-t.exited:
			return published, fmt.Errorf("onion: tor exited (%v): %s", t.waitErr, t.output.lastLine())
		case err := <-evErr:
			if ctx.Err() != nil {
				return published, ctx.Err()
			}
			return published, fmt.Errorf("onion: tor control connection: %w", err)
		case <-bootstrapTimeout:
			return published, &failure{
				fmt.Sprintf("Tor could not connect to the Tor network within %s, so the onion address cannot be reached.", plainDuration(s.opts.BootstrapTimeout)),
				"Check that the box is connected to the internet and its clock is right. Some networks block Tor; the box's other addresses keep working. Hearth tries again by itself.",
				fmt.Errorf("onion: tor bootstrap not done after %v (at %s%%)", s.opts.BootstrapTimeout, detail["bootstrap"])}
		case ev := <-events:
			switch e := ev.(type) {
			case *control.StatusEvent:
				if e.Action != "BOOTSTRAP" {
					continue
				}
				pct := e.Arguments["PROGRESS"]
				detail["bootstrap"] = pct
				if pct == "100" {
					bootstrapTimeout = nil
				}
				if !published {
					r.Set(s.check(status.Pending,
						fmt.Sprintf("The onion address is made; Tor is connecting to the Tor network to publish it (%s%%)…", pct),
						"", cloneDetail(detail)))
				}
			case *control.HSDescEvent:
				if e.Address != k.serviceID() || e.Action != "UPLOADED" || published {
					continue
				}
				published = true
				detail["published"] = "yes"
				if detail["network"] == "down" {
					continue
				}
				r.Set(s.check(status.OK, "Reachable over Tor at "+k.Address(), "", cloneDetail(detail)))
			case *control.NetworkLivenessEvent:
				// tor's own judgement of whether it can reach the Tor
				// network; it keeps trying by itself, so we only report.
				switch strings.TrimSpace(e.Raw) {
				case "DOWN":
					detail["network"] = "down"
					if published {
						r.Set(s.check(status.Warn,
							"The box lost its connection to the Tor network, so the onion address may not answer right now.",
							"Check that the box is connected to the internet. Tor reconnects by itself.", cloneDetail(detail)))
					}
				case "UP":
					detail["network"] = "on"
					if published {
						r.Set(s.check(status.OK, "Reachable over Tor at "+k.Address(), "", cloneDetail(detail)))
					}
				}
			}
		}
	}
}

// drain keeps reading events until none came for quiet, so that bine's
// event reader is never stuck on a full channel while shutting down.
func drain(ch <-chan control.Event, quiet time.Duration) {
	for {
		select {
		case <-ch:
		case <-time.After(quiet):
			return
		}
	}
}

func cloneDetail(d map[string]string) map[string]string {
	c := make(map[string]string, len(d)+1)
	for k, v := range d {
		c[k] = v
	}
	return c
}

func plainDuration(d time.Duration) string {
	switch {
	case d >= time.Minute && d%time.Minute == 0:
		if d == time.Minute {
			return "a minute"
		}
		return fmt.Sprintf("%d minutes", d/time.Minute)
	case d >= time.Second && d%time.Second == 0:
		return fmt.Sprintf("%d seconds", d/time.Second)
	}
	return d.String()
}
