// Package acme gets and renews the box's certificate from an ACME
// certificate authority (Let's Encrypt by default) and writes it where
// xmppd reads it: <state>/tls/cert.pem and key.pem.
//
// # Why certmagic
//
// We use github.com/caddyserver/certmagic's ACME issuer rather than
// golang.org/x/crypto/acme/autocert because a home box is often behind
// carrier-grade NAT, where the CA cannot reach ports 80/443 at all: only
// the DNS-01 challenge works there, and certmagic does DNS-01 through any
// github.com/libdns provider (the same provider netconf/dnsrec uses for
// dynamic DNS). autocert has no DNS-01. certmagic also brings HTTP-01 and
// TLS-ALPN-01 solvers, account handling and the CA's protocol quirks.
//
// We drive certmagic's issuer ourselves instead of its certificate
// manager: xmppd needs one certificate that covers the domain and its
// groups./upload. names (certmagic manages one certificate per name), in
// plain files, and the status page needs to know about every failure and
// retry (certmagic's manager retries silently on its own schedule). So
// this package owns the loop: decide, issue, verify, write, back off.
//
// # Files and the handover to xmppd
//
// The key is put in place before the certificate, each atomically
// (temporary file, fsync, rename), the key with mode 0600. xmppd
// (xmppd/tlsconf) notices a new cert.pem by its modification time on the
// next TLS handshake, at most once a minute; no signal is needed. Replacing
// the key first means that whenever xmppd sees the new certificate the
// matching key is already there; the new certificate waits in
// cert.pem.next meanwhile, so a crash between the two steps is finished on
// the next start. A failed attempt never touches the files, so the
// existing (self-signed) certificate keeps working.
//
// The ACME account key and the CA's challenge bookkeeping live in
// <state>/acme (certmagic's file storage).
//
// # Challenges
//
// HTTP-01 and TLS-ALPN-01 need the CA to reach this box on ports 80 and
// 443 (Options.HTTPAddr and TLSAddr are where our challenge listeners
// bind; certmagic binds them only while a challenge is open, and if the
// port is taken it assumes the server already there answers the
// challenge). DNS-01 needs a DNS provider (Options.DNS) and works behind
// carrier-grade NAT. When both are allowed, DNS-01 is tried first.
//
// On the box xmppd owns ports 80 and 443, so HTTP-01 works when xmppd
// passes /.well-known/acme-challenge/ on to HTTPAddr (e.g. a loopback
// port), and TLS-ALPN-01 only when netconf can bind the TLS port itself;
// DNS-01 needs neither.
//
// FromConfig fills Options from the appliance config; Public says whether
// a domain can have a public certificate at all (hearth.local cannot);
// Off reports the check as off when no certificate is wanted.
//
// # Status
//
// Check ID "cert":
//   - OK      "Certificate for club.example valid until 3 March 2027."
//   - Pending while the first certificate is being requested.
//   - Warn    when the certificate runs out within a week, or a renewal
//     failed and is being retried while the current one still works
//     (Error once less than two days are left).
//   - Error   when there is no valid certificate and getting one failed;
//     Action says what to do in plain words.
package acme

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/netconf/status"
)

// Challenge is an ACME challenge type.
type Challenge string

const (
	HTTP01    Challenge = "http-01"
	TLSALPN01 Challenge = "tls-alpn-01"
	DNS01     Challenge = "dns-01"
)

// CheckID is the status check this package reports.
const CheckID = "cert"

// Options configure the certificate manager.
type Options struct {
	// Domain is the XMPP domain; the certificate's first name.
	Domain string
	// Names are all names the certificate covers. Empty means Domain,
	// groups.<Domain> and upload.<Domain>.
	Names []string
	// Email is given to the CA for expiry warnings; may be empty.
	Email string
	// Directory is the CA's ACME directory URL; empty means Let's Encrypt.
	Directory string
	// RootCAs are trusted for the directory's HTTPS (a test CA); nil means
	// the system's roots.
	RootCAs *x509.CertPool
	// Challenges allowed; empty means all that can work (DNS-01 only with a
	// DNS provider).
	Challenges []Challenge
	// HTTPAddr and TLSAddr are where the HTTP-01 and TLS-ALPN-01 challenge
	// listeners bind; empty means ":80" and ":443". Their hosts must match.
	HTTPAddr, TLSAddr string
	// DNS is the provider for DNS-01 (see dnsrec.NewProvider); nil: no
	// DNS-01.
	DNS certmagic.DNSProvider
	// DNSResolvers are asked whether a challenge record has arrived
	// ("host:port"); empty means the system's resolvers and the domain's
	// authoritative servers.
	DNSResolvers []string
	// DNSPropagationTimeout bounds the wait for a challenge record; zero
	// means 2 minutes, -1 skips the check.
	DNSPropagationTimeout time.Duration
	// Reporter gets check "cert". May be nil.
	Reporter status.Reporter
	// State is the state directory: certificate in State.TLS(), ACME
	// account in State/acme.
	State state.Dir
	// RenewBefore is how long before expiry to renew; zero means when a
	// third of the lifetime is left (30 days for Let's Encrypt's 90).
	RenewBefore time.Duration
	// MinRetry and MaxRetry bound the back-off after a failure (doubling
	// each time); zero means 1 minute and 6 hours. MinRetry is also the
	// least time between two certificates.
	MinRetry, MaxRetry time.Duration
	// OnCert is called after a new certificate was written.
	OnCert func(leaf *x509.Certificate)
	// Log receives certmagic's log lines (JSON); nil discards them.
	Log io.Writer
}

// Manager gets and renews the certificate.
type Manager struct {
	o       Options
	names   []string
	issuers []issuer
	cache   *certmagic.Cache
	stop    sync.Once
	now     func() time.Time
}

// Close releases certmagic's background goroutine. Run calls it on its way
// out; call it yourself only for a Manager that never ran.
func (m *Manager) Close() { m.stop.Do(m.cache.Stop) }

type issuer struct {
	kind string // "dns-01" or "http-01/tls-alpn-01", for Detail
	iss  *certmagic.ACMEIssuer
}

// New checks the options and prepares the ACME clients.
func New(o Options) (*Manager, error) {
	o.Domain = normName(o.Domain)
	if o.Domain == "" {
		return nil, errors.New("acme: no domain")
	}
	if o.State == "" {
		return nil, errors.New("acme: no state directory")
	}
	names := slices.Clone(o.Names)
	if len(names) == 0 {
		names = []string{o.Domain, "groups." + o.Domain, "upload." + o.Domain}
	}
	for i := range names {
		names[i] = normName(names[i])
		if !Public(names[i]) {
			return nil, fmt.Errorf("acme: %q is not a public internet name; a certificate authority cannot issue for it", names[i])
		}
	}
	names = slices.Compact(names)
	if o.Directory == "" {
		o.Directory = certmagic.LetsEncryptProductionCA
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = ":80"
	}
	if o.TLSAddr == "" {
		o.TLSAddr = ":443"
	}
	if o.MinRetry <= 0 {
		o.MinRetry = time.Minute
	}
	if o.MaxRetry < o.MinRetry {
		o.MaxRetry = max(6*time.Hour, o.MinRetry)
	}
	allowed := func(c Challenge) bool { return len(o.Challenges) == 0 || slices.Contains(o.Challenges, c) }

	m := &Manager{o: o, names: names, now: time.Now}
	logger := zap.NewNop()
	if o.Log != nil {
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		logger = zap.New(zapcore.NewCore(enc, zapcore.AddSync(o.Log), zap.DebugLevel))
	}
	var cfg *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           logger,
	})
	done := false
	defer func() {
		if !done {
			m.Close()
		}
	}()
	cfg = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: accountDir(o.State)},
		Logger:  logger,
	})
	base := certmagic.ACMEIssuer{
		CA:           o.Directory,
		TestCA:       o.Directory, // never fall back to a staging CA on our own
		Email:        o.Email,
		Agreed:       true,
		TrustedRoots: o.RootCAs,
		Logger:       logger,
	}
	if allowed(DNS01) && o.DNS != nil {
		t := base
		t.DNS01Solver = &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider:        o.DNS,
			Resolvers:          o.DNSResolvers,
			PropagationTimeout: o.DNSPropagationTimeout,
			Logger:             logger,
		}}
		m.issuers = append(m.issuers, issuer{"dns-01", certmagic.NewACMEIssuer(cfg, t)})
	}
	if allowed(HTTP01) || allowed(TLSALPN01) {
		hh, hp, err := splitAddr(o.HTTPAddr)
		if err != nil {
			return nil, err
		}
		th, tp, err := splitAddr(o.TLSAddr)
		if err != nil {
			return nil, err
		}
		if allowed(HTTP01) && allowed(TLSALPN01) && hh != th {
			return nil, fmt.Errorf("acme: HTTPAddr %s and TLSAddr %s must listen on the same host", o.HTTPAddr, o.TLSAddr)
		}
		t := base
		t.DisableHTTPChallenge = !allowed(HTTP01)
		t.DisableTLSALPNChallenge = !allowed(TLSALPN01)
		t.AltHTTPPort, t.AltTLSALPNPort = hp, tp
		t.ListenHost = hh
		if !allowed(HTTP01) {
			t.ListenHost = th
		}
		var kinds []string
		for _, c := range []Challenge{HTTP01, TLSALPN01} {
			if allowed(c) {
				kinds = append(kinds, string(c))
			}
		}
		m.issuers = append(m.issuers, issuer{strings.Join(kinds, "/"), certmagic.NewACMEIssuer(cfg, t)})
	}
	if len(m.issuers) == 0 {
		return nil, errors.New("acme: no usable challenge type (DNS-01 needs a DNS provider)")
	}
	done = true
	return m, nil
}

// Names are the names the certificate covers.
func (m *Manager) Names() []string { return slices.Clone(m.names) }

// Public reports whether name can have a certificate from a public CA:
// it has a dot and is not under a suffix that only means something at
// home (hearth.local, *.home.arpa) or on tor.
func Public(name string) bool {
	name = normName(name)
	if !strings.Contains(name, ".") || net.ParseIP(name) != nil {
		return false
	}
	for _, suf := range []string{".local", ".localhost", ".onion", ".internal", ".lan", ".home.arpa", ".invalid"} {
		if strings.HasSuffix(name, suf) {
			return false
		}
	}
	return true
}

// Off reports that no certificate is wanted, so the status page shows the
// line greyed out instead of missing.
func Off(rep status.Reporter, why string) {
	rep.Set(status.Check{ID: CheckID, Title: title, Level: status.Off, Message: why})
}

func splitAddr(a string) (string, int, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, fmt.Errorf("acme: listen address %q: %w", a, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return "", 0, fmt.Errorf("acme: listen address %q: bad port", a)
	}
	return h, n, nil
}

func normName(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}
