// Package tlsconf gives xmppd its TLS configuration: the certificate netconf
// obtained (ACME) when there is one, otherwise a self-signed one made on
// this device at first start.
package tlsconf

import (
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

// SelfSigned writes a fresh ECDSA certificate for names, valid ten years.
func SelfSigned(certPath, keyPath string, names []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Hearth"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
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
