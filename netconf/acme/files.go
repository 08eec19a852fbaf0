package acme

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hearthchat/hearth/appliance/state"
)

func accountDir(d state.Dir) string { return filepath.Join(string(d), "acme") }

func (m *Manager) certPath() string { return filepath.Join(m.o.State.TLS(), "cert.pem") }
func (m *Manager) keyPath() string  { return filepath.Join(m.o.State.TLS(), "key.pem") }

// current is the certificate in the TLS directory when it is one we would
// keep: issued by a CA (not self-signed), matching its key, covering every
// name, not yet expired. Anything else (missing, self-signed, for another
// domain) is nil: time to ask the CA.
func (m *Manager) current() *x509.Certificate {
	certPEM, err := os.ReadFile(m.certPath())
	if err != nil {
		return nil
	}
	keyPEM, err := os.ReadFile(m.keyPath())
	if err != nil {
		return nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil
	}
	if selfSigned(leaf) || !m.covers(leaf) || !m.now().Before(leaf.NotAfter) {
		return nil
	}
	return leaf
}

// selfSigned: signed by its own key. (CheckSignatureFrom would refuse a
// leaf that is not marked as a CA, as xmppd's fallback certificate is not.)
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

func (m *Manager) covers(leaf *x509.Certificate) bool {
	for _, n := range m.names {
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// install checks what the CA sent and writes key and chain.
func (m *Manager) install(chainPEM []byte, key *ecdsa.PrivateKey) (*x509.Certificate, error) {
	blk, _ := pem.Decode(chainPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("acme: the CA sent no certificate")
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("acme: the CA's certificate: %w", err)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("acme: the CA's certificate is for another key")
	}
	if !m.covers(leaf) {
		return nil, fmt.Errorf("acme: the CA's certificate does not cover %v (has %v)", m.names, leaf.DNSNames)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("acme: key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	if _, err := tls.X509KeyPair(chainPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("acme: certificate and key: %w", err)
	}
	if err := os.MkdirAll(m.o.State.TLS(), 0o700); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	// The certificate goes to cert.pem.next first, then the key replaces
	// key.pem, then cert.pem.next replaces cert.pem. xmppd reloads when
	// cert.pem changes, and by then the matching key is in place. A crash
	// between the two renames leaves a new key beside the old certificate
	// (xmppd would refuse the pair); recoverPending finishes the job from
	// cert.pem.next on the next start.
	next := m.certPath() + ".next"
	if err := writeAtomic(next, chainPEM, 0o644); err != nil {
		return nil, err
	}
	if err := writeAtomic(m.keyPath(), keyPEM, 0o600); err != nil {
		os.Remove(next)
		return nil, err
	}
	if err := os.Rename(next, m.certPath()); err != nil {
		return nil, fmt.Errorf("acme: install certificate: %w", err)
	}
	syncDir(filepath.Dir(m.certPath()))
	return leaf, nil
}

// recoverPending completes or drops an install that a crash interrupted:
// cert.pem.next goes in when it matches key.pem (the key was already
// replaced), and is removed otherwise (the old pair is still whole).
func (m *Manager) recoverPending() {
	next := m.certPath() + ".next"
	certPEM, err := os.ReadFile(next)
	if err != nil {
		return
	}
	keyPEM, err := os.ReadFile(m.keyPath())
	if err == nil {
		if _, err = tls.X509KeyPair(certPEM, keyPEM); err == nil {
			if os.Rename(next, m.certPath()) == nil {
				syncDir(filepath.Dir(next))
				return
			}
		}
	}
	os.Remove(next)
}

// writeAtomic replaces path with data: a reader sees the old file or the
// new one, never a part, even across a power cut.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("acme: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(mode); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			return fmt.Errorf("acme: write %s: %w", path, err)
		}
	} else {
		f.Close()
		return fmt.Errorf("acme: write %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes renames in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
