// Package web is xmppd's one HTTP server (DESIGN.md: exactly one server on
// ports 80/443, owned by the process that owns the database).
//
// Start binds the listener before anything else in xmppd starts, so a
// phone that opens http://hearth.local right after power-on gets an
// honest "starting — waiting for <part>" page (it refreshes itself, no
// script) instead of "connection refused". SetApp swaps in the real pages
// once storage and the modules are up.
//
// Every request passes, in this order: security headers (CSP without
// inline script, no referrer, nosniff, no framing); the Host allowlist
// (anything but the box's own names and addresses gets 421, against DNS
// rebinding); path normalisation (a non-canonical path is redirected to
// its clean form, never served, so no spelling of a path can skip a
// route's login check); a body limit; then the routes: ACME HTTP-01
// challenges (forwarded to netconf), XEP-0156 host-meta, and the app.
//
// Other parts register on the server: AddLink adds a host-meta link (the
// WebSocket endpoint, when it exists), Handle mounts a handler ahead of
// the app for a path prefix (e.g. "/chat/", "/ws").
package web

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hearthchat/hearth/xmppd/idle"
)

// Options configure the server.
type Options struct {
	// Addr is the plain-HTTP listener (":80" on the box, "127.0.0.1:8080"
	// under -dev).
	Addr string
	// TLSAddr is the HTTPS listener (":443"); "" for none. Served with
	// TLSConfig's certificate.
	TLSAddr   string
	TLSConfig *tls.Config
	// PublicCert reports whether the certificate is one browsers trust
	// (from a CA, not the box's own): only then does plain HTTP redirect
	// to HTTPS for the public names.
	PublicCert func() bool
	// Hosts lists the names the box answers to (its domain, hearth.local,
	// its onion name); subdomains of Domain() are allowed too. Literal
	// addresses of the box's interfaces are always allowed.
	Hosts func() []string
	// Domain is the chat's domain (for subdomains and the HTTPS redirect).
	Domain func() string
	// Dev also allows localhost and loopback addresses.
	Dev bool
	// ACMEChallenge is where netconf answers HTTP-01 challenges
	// ("127.0.0.1:8402"); "" answers them with 404.
	ACMEChallenge string
	// LAN returns the box's home network addresses for the starting page.
	LAN func() []string
	Log *slog.Logger
}

// Server is the running web server.
type Server struct {
	o       Options
	Addr    net.Addr // bound plain-HTTP address
	TLSAddr net.Addr // bound HTTPS address, nil for none

	app     atomic.Pointer[http.Handler]
	waiting atomic.Pointer[string]
	// broken, when set, replaces the starting page: the chat cannot
	// start and waiting will not help (handler.go).
	broken atomic.Pointer[string]

	mu     sync.Mutex
	links  []Link
	mounts []mount

	srvs  []*http.Server
	wg    sync.WaitGroup
	hosts *hostCheck
}

type mount struct {
	prefix string
	h      http.Handler
	// ownBody: h bounds request bodies and their time itself
	// (HandleStream), so MaxBody is not applied.
	ownBody bool
}

// Start binds and serves. Until SetApp the app routes show the starting
// page.
func Start(o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Domain == nil {
		o.Domain = func() string { return "" }
	}
	s := &Server{o: o}
	s.hosts = newHostCheck(o)
	w := "the chat server"
	s.waiting.Store(&w)
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("web: listen %s: %w", o.Addr, err)
	}
	s.Addr = ln.Addr()
	s.serve(ln, false)
	if o.TLSAddr != "" && o.TLSConfig != nil {
		tln, err := net.Listen("tcp", o.TLSAddr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("web: listen %s: %w", o.TLSAddr, err)
		}
		s.TLSAddr = tln.Addr()
		cfg := o.TLSConfig.Clone()
		cfg.NextProtos = []string{"h2", "http/1.1"}
		// TLS over idle.Conn: a WebSocket session hijacked from this
		// listener can then park on the poller (xmppd/ws).
		s.serve(tls.NewListener(idle.Listener{Listener: tln}, cfg), true)
	}
	return s, nil
}

func (s *Server) serve(ln net.Listener, isTLS bool) {
	srv := &http.Server{
		Handler: s.handler(isTLS),
		// Slow clients must not hold a Pi's memory: headers within 10 s,
		// a whole request within a minute.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.o.Log.Handler(), slog.LevelDebug),
	}
	s.srvs = append(s.srvs, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.o.Log.Error("web", "err", err)
		}
	}()
}

// Waiting names the part the starting page says the box waits for.
func (s *Server) Waiting(part string) { s.waiting.Store(&part) }

// Broken makes the starting page say, in words, why the chat cannot start
// and what to do (a damaged database): a page that refreshes forever
// saying "starting" would hide it.
func (s *Server) Broken(why string) { s.broken.Store(&why) }

// SetApp installs the pages (setup-ui) once the box is up.
func (s *Server) SetApp(h http.Handler) { s.app.Store(&h) }

// Ready reports whether SetApp was called.
func (s *Server) Ready() bool { return s.app.Load() != nil }

// Handle mounts h for every path under prefix (which ends in "/"), or
// for exactly prefix otherwise, ahead of the app.
func (s *Server) Handle(prefix string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mounts = append(s.mounts, mount{prefix, h, false})
}

// HandleStream is Handle for a handler that bounds request bodies itself:
// MaxBody is not applied, and the handler extends the server's one-minute
// ReadTimeout with http.ResponseController where it needs to (HTTP upload
// takes files of up to 100 MiB from phones on slow links).
func (s *Server) HandleStream(prefix string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mounts = append(s.mounts, mount{prefix, h, true})
}

// ownsBody reports whether the handler mounted for path bounds its bodies.
func (s *Server) ownsBody(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mounts {
		if path == m.prefix || strings.HasSuffix(m.prefix, "/") && strings.HasPrefix(path, m.prefix) {
			return m.ownBody
		}
	}
	return false
}

func (s *Server) mounted(path string) http.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mounts {
		if path == m.prefix || strings.HasSuffix(m.prefix, "/") && strings.HasPrefix(path, m.prefix) {
			return m.h
		}
	}
	return nil
}

// Close stops the server at once.
func (s *Server) Close() error {
	for _, srv := range s.srvs {
		srv.Close()
	}
	s.wg.Wait()
	return nil
}

// Shutdown stops accepting and waits for requests in flight.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	for _, srv := range s.srvs {
		err = errors.Join(err, srv.Shutdown(ctx))
	}
	s.wg.Wait()
	return err
}
