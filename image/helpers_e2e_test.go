//go:build e2e

package image_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hearthchat/hearth/image"
	"github.com/hearthchat/hearth/internal/testenv"
)

// The image tests share one scratch directory and build each image once per
// `go test` run; the Go build cache and the module cache (kernels, firmware)
// make warm builds take seconds.
var (
	scratch     string
	scratchOnce sync.Once
	gokOnce     sync.Once
	gokPath     string
	gokErr      error
)

func repoDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func scratchDir(t *testing.T) string {
	scratchOnce.Do(func() {
		d, err := os.MkdirTemp("", "hearth-image-test")
		if err != nil {
			panic(err)
		}
		scratch = d
	})
	return scratch
}

func TestMain(m *testing.M) {
	code := m.Run()
	if scratch != "" && os.Getenv("HEARTH_KEEP_SCRATCH") == "" {
		os.RemoveAll(scratch)
	}
	os.Exit(code)
}

// gok returns the gok pinned in tools/go.mod, built by make (`make test`
// builds it before the suites through test-deps; `make gok` alone). The
// suite does not build it itself: a plain `go test -tags e2e ./...` on a
// machine without it skips the image tests instead of fetching and building
// a toolchain for images.
func gok(t *testing.T) string {
	t.Helper()
	gokOnce.Do(func() {
		gokPath = filepath.Join(repoDir(t), ".cache", "bin", "gok")
		if _, err := os.Stat(gokPath); err != nil {
			gokErr = fmt.Errorf("%s missing: run `make gok` (make test and make test-image build it first)", gokPath)
		}
	})
	if gokErr != nil {
		testenv.Skip(t, gokErr)
	}
	return gokPath
}

func builder(t *testing.T, version string) *image.Builder {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(scratchDir(t), "gok.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	return &image.Builder{
		Repo:    repoDir(t),
		Gok:     gok(t),
		Version: version,
		WorkDir: filepath.Join(scratchDir(t), "work"),
		Log:     logf,
	}
}

func gokLog(t *testing.T) string {
	b, _ := os.ReadFile(filepath.Join(scratchDir(t), "gok.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// hostXmppd builds cmd/xmppd for this machine, to prepare state offline.
func hostXmppd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(scratchDir(t), "xmppd-host")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/xmppd")
	cmd.Dir = repoDir(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build xmppd: %v\n%s", err, out)
	}
	return bin
}

// writeCert writes a self-signed certificate for domain into dir/tls (where
// xmppd looks for one) and returns the path clients should trust.
func writeCert(t *testing.T, dir, domain string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: domain},
		DNSNames:              []string{domain},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cert := filepath.Join(tlsDir, "cert.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tlsDir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert
}
