// Package tlsconf gives xmppd its TLS configuration: the certificate netconf
// obtained (ACME) when there is one, otherwise a self-signed one made on
// this device at first start.
package tlsconf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hearthchat/hearth/appliance/clock"
)

// Certs serves the certificate files in a directory and picks up a new
// certificate when netconf replaces them. The files are checked lazily on a
// handshake, at most once a minute, so an idle server sets no timer.
type Certs struct {
	dir string
	// Recovered is why Load set the files in the directory aside (they
	// could not be used) and started over with a self-signed certificate.
	Recovered error

	mu      sync.Mutex
	cert    *tls.Certificate
	mtime   time.Time
	checked time.Time
}

// Files in the directory.
func (c *Certs) certPath() string { return filepath.Join(c.dir, "cert.pem") }
func (c *Certs) keyPath() string  { return filepath.Join(c.dir, "key.pem") }

// Load prepares dir, creating a self-signed certificate for names if no
// certificate is there yet.
func Load(dir string, names []string) (*Certs, error) {
	c := &Certs{dir: dir}
	if _, err := os.Stat(c.certPath()); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := SelfSigned(c.certPath(), c.keyPath(), names); err != nil {
			return nil, err
		}
	}
	if expired, err := expiredSelfSigned(c.certPath()); err == nil && expired != nil {
		// Made by an older xmppd on a Pi whose clock still said 1970
		// (valid 31 Dec 1969 - 1 Jan 1980): expired at every time the
		// box can show now that appliance/clock keeps it at or after
		// clock.Epoch, so no member's app can use it, pinned or not.
		// Re-minted once; the new one never expires, so this never
		// fires for it.
		suffix := ".expired-" + time.Now().UTC().Format("20060102T150405")
		os.Rename(c.certPath(), c.certPath()+suffix)
		os.Rename(c.keyPath(), c.keyPath()+suffix)
		if err := SelfSigned(c.certPath(), c.keyPath(), names); err != nil {
			return nil, err
		}
		c.Recovered = fmt.Errorf("tls: self-signed certificate expired %s, before any Hearth firmware existed (made while the clock said 1970); a new one never expires (old one set aside as *%s)",
			expired.NotAfter.UTC().Format(time.RFC3339), suffix)
	}
	if err := c.reload(); err != nil {
		// A half-written or mismatched pair must not keep the chat
		// server from starting: members can still connect (accepting
		// the self-signed certificate) while netconf gets a new one.
		suffix := ".broken-" + time.Now().UTC().Format("20060102T150405")
		os.Rename(c.certPath(), c.certPath()+suffix)
		os.Rename(c.keyPath(), c.keyPath()+suffix)
		if serr := SelfSigned(c.certPath(), c.keyPath(), names); serr != nil {
			return nil, fmt.Errorf("%w; and no self-signed certificate either: %w", err, serr)
		}
		if rerr := c.reload(); rerr != nil {
			return nil, rerr
		}
		c.Recovered = fmt.Errorf("%w (set aside as *%s)", err, suffix)
	}
	return c, nil
}

func (c *Certs) reload() error {
	fi, err := os.Stat(c.certPath())
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(c.certPath(), c.keyPath())
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	c.cert, c.mtime = &cert, fi.ModTime()
	return nil
}

// Get returns the current certificate.
func (c *Certs) Get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) > time.Minute {
		c.checked = time.Now()
		if fi, err := os.Stat(c.certPath()); err == nil && !fi.ModTime().Equal(c.mtime) {
			if err := c.reload(); err != nil {
				// Keep serving the old certificate: a half-written
				// renewal must not take the server down.
				_ = err
			}
		}
	}
	return c.cert, nil
}

// Config returns a server TLS configuration (TLS 1.2 and newer) for the
// given ALPN protocols.
func (c *Certs) Config(alpn ...string) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.Get,
		NextProtos:     alpn,
	}
}

// EndPoint is the tls-server-end-point channel binding (RFC 5929) of the
// certificate a connection used.
func EndPoint(cs *tls.ConnectionState, cert *tls.Certificate) []byte {
	if cert == nil || len(cert.Certificate) == 0 {
		return nil
	}
	// Our certificates are ECDSA-SHA256 or RSA-SHA256: the hash is SHA-256.
	sum := sha256.Sum256(cert.Certificate[0])
	return sum[:]
}

// The validity of self-signed certificates: from the Unix epoch to the end
// of 9999, RFC 5280 §4.1.2.5's value for "no well-defined expiration date".
// Valid at any clock the box can have: a Pi without a battery clock starts
// at 1970 and may never learn the time (a box without internet), or learns
// it after the certificate was made; members' apps pin the certificate, so
// it must never need replacing because of a date. (It was made valid from
// now-1h for ten years: minted at a 1970 boot, it expired in 1980.)
var (
	selfSignedFrom  = time.Unix(0, 0).UTC()
	selfSignedUntil = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// expiredSelfSigned returns the certificate at path if it is self-signed
// and expired before clock.Epoch, i.e. at every time the box can show.
func expiredSelfSigned(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("tls: no certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(cert.RawIssuer, cert.RawSubject) || cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil {
		return nil, nil
	}
	if !cert.NotAfter.Before(clock.Epoch) {
		return nil, nil
	}
	return cert, nil
}

// SelfSigned writes a fresh ECDSA certificate for names, valid at any time
// (selfSignedFrom to selfSignedUntil).
func SelfSigned(certPath, keyPath string, names []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Hearth"}},
		NotBefore:    selfSignedFrom,
		NotAfter:     selfSignedUntil,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
