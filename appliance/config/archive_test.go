package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestArchiveRetention(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		json string
		want time.Duration
	}{
		{`{"version":1}`, 30 * day},
		{`{"version":1,"archive":{"retention_days":7}}`, 7 * day},
		{`{"version":1,"archive":{"retention_days":0}}`, 30 * day},
		{`{"version":1,"archive":{"retention_days":-3}}`, 30 * day},
		{`{"version":1,"archive":{"retention_days":100000}}`, MaxRetentionDays * day},
	} {
		p := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(p, []byte(c.json), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Archive.Retention(); got != c.want {
			t.Errorf("%s: retention %v, want %v", c.json, got, c.want)
		}
	}
}
