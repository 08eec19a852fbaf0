package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"

	"github.com/hearthchat/hearth/netconf/internal/wait"
)

// maxSleep bounds one wait so the status ("valid until …", "runs out
// soon") is refreshed and a wrong clock at boot is corrected within hours.
const maxSleep = 12 * time.Hour

// Run keeps a valid certificate in place until ctx ends: it requests one
// when there is none (or only the self-signed one), renews ahead of expiry,
// and backs off exponentially after failures, leaving the files untouched.
// Call it once.
func (m *Manager) Run(ctx context.Context) error {
	defer m.Close()
	m.recoverPending()
	delay := m.o.MinRetry
	var lastIssued time.Time
	var failures int
	for {
		cur := m.current()
		now := m.now()
		if cur != nil {
			renewAt := m.renewAt(cur)
			if !lastIssued.IsZero() {
				renewAt = later(renewAt, lastIssued.Add(m.o.MinRetry))
			}
			if now.Before(renewAt) {
				m.reportValid(cur)
				if !wait.Sleep(ctx, min(renewAt.Sub(now), maxSleep)) {
					return nil
				}
				continue
			}
		}
		if failures == 0 {
			m.reportWorking(cur)
		}
		kind, err := m.obtain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			failures, delay = 0, m.o.MinRetry
			lastIssued = m.now()
			continue
		}
		failures++
		retryIn := delay
		if c := classify(err); c == rateLimited {
			// A CA that says "too many" wants hours, not minutes.
			retryIn = max(retryIn, min(time.Hour, m.o.MaxRetry))
		}
		m.reportFailure(cur, kind, err, failures, m.now().Add(retryIn))
		if !wait.Sleep(ctx, retryIn) {
			return nil
		}
		delay = min(delay*2, m.o.MaxRetry)
	}
}

// renewAt is when the certificate should be replaced.
func (m *Manager) renewAt(leaf *x509.Certificate) time.Time {
	before := m.o.RenewBefore
	if before <= 0 {
		before = leaf.NotAfter.Sub(leaf.NotBefore) / 3
	}
	return leaf.NotAfter.Add(-before)
}

// obtain gets a certificate from the first issuer that succeeds, checks
// it and writes it. It returns the challenge kind last tried.
func (m *Manager) obtain(ctx context.Context) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("acme: key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: m.names[0]},
		DNSNames: m.names,
	}, key)
	if err != nil {
		return "", fmt.Errorf("acme: request: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return "", fmt.Errorf("acme: request: %w", err)
	}
	var errs []error
	var kind string
	for _, is := range m.issuers {
		kind = is.kind
		ictx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		ic, err := is.iss.Issue(ictx, csr)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("acme: %s: %w", is.kind, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		leaf, err := m.install(ic.Certificate, key)
		if err != nil {
			return kind, err
		}
		if m.o.OnCert != nil {
			m.o.OnCert(leaf)
		}
		return kind, nil
	}
	return kind, errors.Join(errs...)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
