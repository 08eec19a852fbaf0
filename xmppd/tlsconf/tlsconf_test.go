package tlsconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCreatesSelfSigned(t *testing.T) {
	dir := t.TempDir()
	c, err := Load(dir, []string{"club.example"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Recovered != nil {
		t.Fatalf("fresh directory reported as recovered: %v", c.Recovered)
	}
	cert, _ := c.Get(nil)
	if cert == nil || cert.Leaf == nil && len(cert.Certificate) == 0 {
		t.Fatal("no certificate")
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v %v", fi.Mode(), err)
	}
}

// A certificate and key that do not belong together (a crash between two
// writes, a wrong file copied in) must not keep the server from starting.
func TestLoadRecoversFromMismatchedPair(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if _, err := Load(a, []string{"a.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(b, []string{"b.example"}); err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(filepath.Join(b, "key.pem"))
	os.WriteFile(filepath.Join(a, "key.pem"), key, 0o600)
	c, err := Load(a, []string{"a.example"})
	if err != nil {
		t.Fatalf("Load with a mismatched pair: %v", err)
	}
	if c.Recovered == nil {
		t.Fatal("mismatched pair not reported")
	}
	if cert, _ := c.Get(nil); cert == nil {
		t.Fatal("no certificate after recovery")
	}
	ents, _ := os.ReadDir(a)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !strings.Contains(strings.Join(names, " "), "cert.pem.broken-") {
		t.Fatalf("broken files not kept for inspection: %v", names)
	}
}
