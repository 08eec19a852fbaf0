// Package netconf keeps the box reachable: it reads the appliance config,
// runs the parts that config asks for (mDNS, UPnP port mappings,
// certificates and DNS records, the tor onion service), and gathers what
// each part finds into one status report in plain words.
//
// The report is written to DIR/status/netconf.json (read by the setup and
// health pages even while netconf restarts) and served on netconf's local
// socket, DIR/netconf.sock:
//
//	GET  /status    the report (JSON, netconf/status.Report)
//	POST /reload    re-read the config and restart the parts (the setup
//	                pages call it after saving)
//	POST /selftest  run the reachability self-tests now (apps; other servers on 5269)
//	POST /reset     factory reset: delete the router's port mappings
//
// Each part lives in its own package and knows nothing of the others; this
// package only wires them to the config (parts.go).
package netconf

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/netconf/status"
)

// Options configure the service. The zero Ports are the appliance's.
type Options struct {
	State state.Dir
	Ports Ports
	Log   *slog.Logger
	// Local makes the parts stay on this machine: no mDNS announcements
	// and no router or CA contact unless the config explicitly enables
	// them (`make run` on a laptop).
	Local bool
	// UPnP asks the router for port mappings even when the config does not
	// (`make run UPNP=1`: the person at the laptop agreed on the command
	// line; on the box the setting in the config is the admin's consent).
	UPnP bool
	// SelfTestAddr, when set, is dialled by the self-test instead of the
	// domain's public address (tests; a box behind a router that cannot
	// hairpin).
	SelfTestAddr string
	// SelfTestS2SAddr is the same for the federation self-test (the
	// domain's s2s port otherwise).
	SelfTestS2SAddr string
	// TorOffline keeps tor off the Tor network (tests: the onion service
	// is created but never published).
	TorOffline bool
	// DNSResolver ("host:port") answers the record checks and DNS-01
	// propagation checks instead of the system's resolver (tests).
	DNSResolver string
	// ACMERoots are trusted for the CA's own HTTPS (a test CA); nil means
	// the system's. ACMEHTTPAddr and ACMETLSAddr move the challenge
	// listeners off :80 and :443 (tests).
	ACMERoots                 *x509.CertPool
	ACMEHTTPAddr, ACMETLSAddr string
}

// Service is netconf running.
type Service struct {
	opts  Options
	board status.Board

	reload   chan struct{}
	selftest chan chan struct{}

	mu    sync.Mutex
	parts *running // the parts for the current config
	cfg   *config.Config

	extMu sync.Mutex
	ext   []netip.Addr // the home's public addresses, from the router

	writeMu  sync.Mutex
	lastFile []byte
}

// New returns a service; call Run.
func New(opts Options) *Service {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Ports.C2S == 0 {
		opts.Ports = DefaultPorts()
	}
	return &Service{opts: opts, reload: make(chan struct{}, 1), selftest: make(chan chan struct{})}
}

// externalAddrs are the home's public addresses as last learned.
func (s *Service) externalAddrs() []netip.Addr {
	s.extMu.Lock()
	defer s.extMu.Unlock()
	return s.ext
}

// Board is where the parts report; exposed for tests and for the command.
func (s *Service) Board() *status.Board { return &s.board }

// Report is the current report.
func (s *Service) Report() status.Report { return s.board.Report() }

// Reload asks Run to re-read the config.
func (s *Service) Reload() {
	select {
	case s.reload <- struct{}{}:
	default:
	}
}

// Run serves until ctx ends, then stops the parts (they delete their
// port mappings and withdraw their announcements on the way out).
func (s *Service) Run(ctx context.Context) error {
	if err := s.opts.State.Ensure(); err != nil {
		return err
	}
	s.board.OnChange(s.writeStatus)
	srv, err := s.serveSocket()
	if err != nil {
		return err
	}
	defer srv.Close()

	for {
		cfg, err := config.Load(s.opts.State.Config())
		if err != nil {
			s.board.Set(status.Check{ID: "config", Title: "Settings", Level: status.Error,
				Message: "The box's network settings could not be read.",
				Action:  "Open the setup pages and save the network settings again.",
				Detail:  map[string]string{"error": err.Error()}})
			cfg = config.Default()
		} else {
			s.board.Remove("config")
		}
		r := s.start(ctx, cfg)
		select {
		case <-ctx.Done():
			r.stop()
			return nil
		case <-s.reload:
			s.opts.Log.Info("netconf: reloading config")
			r.stop()
		}
	}
}

// running is one generation of parts.
type running struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (r *running) stop() {
	r.cancel()
	r.wg.Wait()
}

func (s *Service) start(ctx context.Context, cfg *config.Config) *running {
	pctx, cancel := context.WithCancel(ctx)
	r := &running{cancel: cancel}
	s.mu.Lock()
	s.parts, s.cfg = r, cfg
	s.mu.Unlock()
	for _, p := range s.partsFor(cfg) {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := p.run(pctx); err != nil && pctx.Err() == nil {
				s.opts.Log.Error("netconf part stopped", "part", p.name, "err", err)
			}
		}()
	}
	return r
}

// part is one job netconf runs for the current config.
type part struct {
	name string
	run  func(ctx context.Context) error
}

// writeStatus keeps DIR/status/netconf.json equal to the report. The file
// is rewritten only when something other than a timestamp changed: renewals
// confirm checks every hour, and an SD card should not be written for that.
func (s *Service) writeStatus(r status.Report) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	key := r
	key.Updated = time.Time{}
	key.Checks = append([]status.Check(nil), r.Checks...)
	for i := range key.Checks {
		key.Checks[i].Updated = time.Time{}
	}
	kb, _ := key.JSON()
	if string(kb) == string(s.lastFile) {
		return
	}
	b, err := r.JSON()
	if err != nil {
		return
	}
	path := filepath.Join(s.opts.State.Status(), "netconf.json")
	if err := config.WriteFileAtomic(path, append(b, '\n'), 0o644); err != nil {
		s.opts.Log.Warn("netconf: status file", "err", err)
		return
	}
	s.lastFile = kb
}

func (s *Service) serveSocket() (*http.Server, error) {
	path := s.opts.State.NetconfSocket()
	// Left by a killed netconf; only one runs per state directory.
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("netconf socket: %w", err)
	}
	os.Chmod(path, 0o600)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		b, err := s.Report().JSON()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		s.Reload()
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /selftest", func(w http.ResponseWriter, r *http.Request) {
		s.SelfTest(r.Context())
		b, _ := s.Report().JSON()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		if err := s.FactoryReset(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.opts.Log.Error("netconf socket", "err", err)
		}
	}()
	return srv, nil
}
