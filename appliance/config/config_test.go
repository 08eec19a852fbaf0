package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadMissingIsDefault(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "none.json"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != SchemaVersion || c.Domain == "" {
		t.Fatalf("default config = %+v", c)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	c := Default()
	c.Domain = "club.example"
	c.Net.UPnP = true
	if err := Save(p, c); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Domain != "club.example" || !got.Net.UPnP {
		t.Fatalf("round trip lost settings: %+v", got)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode = %v, want 0600", fi.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".config.json.tmp*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
}

func TestLoadRejectsNewerSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(p, []byte(`{"version": 99}`), 0o600)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Load(newer schema) error = %v", err)
	}
}

func TestLoadRejectsGarbage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(p, []byte(`{"version": `), 0o600)
	if _, err := Load(p); err == nil {
		t.Fatal("Load(truncated) succeeded")
	}
}
