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
	// Expiry of the timestamp (zero: 7 days) and of the snapshot and
	// targets metadata (zero: 90 days). A feed must be re-signed (make
	// release, or make refresh-feed) before the timestamp expires, or boxes
	// refuse it as stale.
	TimestampExpiry time.Duration
	TargetsExpiry   time.Duration
	// Now is the signing time (time.Now if zero): tests sign in the past.
	Now time.Time
}

// Refresh re-signs the feed in dir as it is, with new versions and
// expiries: the same release, files untouched. A feed's timestamp expires
// after a week so a box can tell a frozen or replayed feed from a quiet one;
// whoever serves a feed runs this (make refresh-feed) from a daily job.
// Zero arguments mean what they mean in Release.
func Refresh(dir string, keys *Keys, now time.Time, timestampExpiry, targetsExpiry time.Duration) error {
	md := filepath.Join(dir, "metadata")
	targets, err := metadata.Targets().FromFile(filepath.Join(md, "targets.json"))
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	// The old targets must still be ours: refreshing someone else's feed
	// would put our signature on files we never checked.
	if err := verifyWith(targets, keys); err != nil {
		return fmt.Errorf("refresh %s: %w", dir, err)
	}
	versions := map[string]int64{}
	for _, role := range []string{metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		v, err := metaVersion(filepath.Join(md, role+".json"))
		if err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		versions[role] = v + 1
	}
	targets.Signed.Version = versions[metadata.TARGETS]
	targets.ClearSignatures()
	return signChain(md, keys, targets, now, timestampExpiry, targetsExpiry,
		func(role string) int64 { return versions[role] })
}

// Publish writes a signed feed for r into dir, replacing the previous
// release there. Metadata versions continue from what dir already holds, so
// boxes that saw the previous metadata accept the new one.
func Publish(dir string, keys *Keys, r Release) error {
	md := filepath.Join(dir, "metadata")
	td := filepath.Join(dir, "targets")
	for _, d := range []string{md, td} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	next := func(role string) int64 {
		v, err := metaVersion(filepath.Join(md, role+".json"))
		if err != nil {
			return 1
		}
		return v + 1
	}

	targets := metadata.Targets(time.Time{}) // signChain sets the expiry
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
	if err := signChain(md, keys, targets, r.Now, r.TimestampExpiry, r.TargetsExpiry, next); err != nil {
		return err
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

// signChain signs targets (Version already set) and the snapshot and
// timestamp over it, and writes them with the root into md. Order matters
// for a feed read while it is written: the timestamp, which points at
// everything else, goes last. Zero now and expiries take Release's
// defaults.
func signChain(md string, keys *Keys, targets *metadata.Metadata[metadata.TargetsType], now time.Time,
	timestampExpiry, targetsExpiry time.Duration, next func(role string) int64) error {
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	if timestampExpiry == 0 {
		timestampExpiry = 7 * 24 * time.Hour
	}
	if targetsExpiry == 0 {
		targetsExpiry = 90 * 24 * time.Hour
	}
	targets.Signed.Expires = now.Add(targetsExpiry)
	if err := sign(targets, keys.Private[metadata.TARGETS]); err != nil {
		return err
	}
	snapshot := metadata.Snapshot(now.Add(targetsExpiry))
	snapshot.Signed.Version = next(metadata.SNAPSHOT)
	snapshot.Signed.Meta["targets.json"] = metadata.MetaFile(targets.Signed.Version)
	if err := sign(snapshot, keys.Private[metadata.SNAPSHOT]); err != nil {
		return err
	}
	timestamp := metadata.Timestamp(now.Add(timestampExpiry))
	timestamp.Signed.Version = next(metadata.TIMESTAMP)
	timestamp.Signed.Meta["snapshot.json"] = metadata.MetaFile(snapshot.Signed.Version)
	if err := sign(timestamp, keys.Private[metadata.TIMESTAMP]); err != nil {
		return err
	}
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
	return nil
}

// verifyWith checks that targets carries a valid signature by keys.
func verifyWith(targets *metadata.Metadata[metadata.TargetsType], keys *Keys) error {
	root, err := metadata.Root().FromBytes(keys.Root)
	if err != nil {
		return fmt.Errorf("root metadata: %w", err)
	}
	if err := root.VerifyDelegate(metadata.TARGETS, targets); err != nil {
		return fmt.Errorf("targets not signed by these keys: %w", err)
	}
	return nil
}

// metaVersion reads the version of a metadata file without trusting it.
func metaVersion(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var v struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v.Signed.Version, nil
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
