package update

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TargetName is the feed's file name for an architecture's root file system.
func TargetName(goarch string) string { return "hearth-" + goarch + ".root.squashfs" }

// Custom is the custom metadata of a release target.
type Custom struct {
	Release int    `json:"release"` // monotonically increasing; the version floor compares these
	Version string `json:"version"` // what appliance/version.Version says in that build
}

// Release is what Publish puts into a feed.
type Release struct {
	Custom
	// Files maps GOARCH to the root squashfs built for it.
	Files map[string]string
	// Expiry of the timestamp, snapshot and targets metadata. A feed must be
	// re-signed (make release) before the timestamp expires, or boxes refuse
	// it as stale.
	TimestampExpiry time.Duration
	TargetsExpiry   time.Duration
	// Now is the signing time (time.Now if zero): tests sign in the past.
	Now time.Time
}

// Publish writes a signed feed for r into dir, replacing the previous
// release there. Metadata versions continue from what dir already holds, so
// boxes that saw the previous metadata accept the new one.
func Publish(dir string, keys *Keys, r Release) error {
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	if r.TimestampExpiry == 0 {
		r.TimestampExpiry = 7 * 24 * time.Hour
	}
	if r.TargetsExpiry == 0 {
		r.TargetsExpiry = 90 * 24 * time.Hour
	}
	md := filepath.Join(dir, "metadata")
	td := filepath.Join(dir, "targets")
	for _, d := range []string{md, td} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	next := func(role string) int64 {
		b, err := os.ReadFile(filepath.Join(md, role+".json"))
		if err != nil {
			return 1
		}
		var v struct {
			Signed struct {
				Version int64 `json:"version"`
			} `json:"signed"`
		}
		if json.Unmarshal(b, &v) != nil {
			return 1
		}
		return v.Signed.Version + 1
	}

	targets := metadata.Targets(now.Add(r.TargetsExpiry))
	targets.Signed.Version = next(metadata.TARGETS)
	custom, err := json.Marshal(r.Custom)
	if err != nil {
		return err
	}
	raw := json.RawMessage(custom)
	for arch, src := range r.Files {
		name := TargetName(arch)
		if err := copyFile(src, filepath.Join(td, name)); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		tf, err := metadata.TargetFile().FromFile(filepath.Join(td, name), "sha256")
		if err != nil {
			return fmt.Errorf("publish %s: %w", name, err)
		}
		tf.Custom = &raw
		targets.Signed.Targets[name] = tf
	}
	if err := sign(targets, keys.Private[metadata.TARGETS]); err != nil {
		return err
	}

	snapshot := metadata.Snapshot(now.Add(r.TargetsExpiry))
	snapshot.Signed.Version = next(metadata.SNAPSHOT)
	snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(targets.Signed.Version)
	if err := sign(snapshot, keys.Private[metadata.SNAPSHOT]); err != nil {
		return err
	}

	timestamp := metadata.Timestamp(now.Add(r.TimestampExpiry))
	timestamp.Signed.Version = next(metadata.TIMESTAMP)
	timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(snapshot.Signed.Version)
	if err := sign(timestamp, keys.Private[metadata.TIMESTAMP]); err != nil {
		return err
	}

	// Order matters for a feed read while it is written: the timestamp,
	// which points at everything else, goes last.
	files := []struct {
		name string
		md   interface{ ToBytes(bool) ([]byte, error) }
	}{{"targets.json", targets}, {"snapshot.json", snapshot}, {"timestamp.json", timestamp}}
	if err := writeAtomic(filepath.Join(md, "root.json"), keys.Root); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(md, "1.root.json"), keys.Root); err != nil {
		return err
	}
	for _, f := range files {
		b, err := f.md.ToBytes(true)
		if err != nil {
			return fmt.Errorf("publish %s: %w", f.name, err)
		}
		if err := writeAtomic(filepath.Join(md, f.name), b); err != nil {
			return err
		}
	}
	// Drop targets of architectures this release does not have.
	entries, err := os.ReadDir(td)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	for _, e := range entries {
		if _, ok := targets.Signed.Targets[e.Name()]; !ok {
			os.Remove(filepath.Join(td, e.Name()))
		}
	}
	return nil
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
