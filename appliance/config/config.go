// Package config is the appliance configuration: one versioned JSON file in
// the state directory, written atomically, read by every Hearth program.
//
// Each part of the appliance owns one section of the file, declared in its
// own source file here (net.go, update.go, …), so that parts can grow their
// settings without editing each other's code.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SchemaVersion is the version this build writes. Load refuses a file from a
// newer schema rather than silently dropping settings it does not know.
const SchemaVersion = 1

// Config is the whole appliance configuration.
type Config struct {
	Version int `json:"version"`
	// Domain is the XMPP domain (the part after the @ in addresses).
	Domain string `json:"domain"`
	// Claimed is set once somebody has entered the setup code and created
	// the first admin account.
	Claimed bool `json:"claimed"`

	Net    Net    `json:"net"`
	Update Update `json:"update"`
	Site   Site   `json:"site"`
	TURN   TURN   `json:"turn"`
	// Archive is the message archive's retention (archive.go).
	Archive Archive `json:"archive"`
	// Federation is talking to other XMPP servers (federation.go).
	Federation Federation `json:"federation"`
	// Backup is the nightly whole-box backup to a USB stick (backup.go).
	Backup Backup `json:"backup"`
}

// Default is the configuration of a box nobody has set up yet.
func Default() *Config {
	c := &Config{Version: SchemaVersion, Domain: "hearth.local"}
	c.Net = DefaultNet()
	c.Update = DefaultUpdate()
	c.TURN = DefaultTURN()
	c.Archive = DefaultArchive()
	return c
}

// Load reads path. A missing file yields Default(), so a fresh box needs no
// file to start.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := Default()
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if c.Version > SchemaVersion {
		return nil, fmt.Errorf("config %s: schema version %d is newer than this build's %d", path, c.Version, SchemaVersion)
	}
	c.Version = SchemaVersion
	return c, nil
}

// Save writes c to path atomically: a reader (or a power cut) sees either the
// old file or the new one, never a mix.
func Save(path string, c *Config) error {
	c.Version = SchemaVersion
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return WriteFileAtomic(path, append(b, '\n'), 0o600)
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it,
// renames it over path and syncs the directory, so the rename itself is
// durable too.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync dir: %w", path, err)
	}
	return nil
}
