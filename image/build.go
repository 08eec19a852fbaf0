package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hearthchat/hearth/appliance/setupcard"
	"github.com/hearthchat/hearth/appliance/update"
)

// Target is one image flavour built from the repository's instance config.
type Target struct {
	Name   string // "pi" or "vm"
	GOARCH string
}

var (
	// Pi is the image for Raspberry Pi 3, 4, 5 and Zero 2 W.
	Pi = Target{Name: "pi", GOARCH: "arm64"}
	// VM is the amd64 image that boots under qemu.
	VM = Target{Name: "vm", GOARCH: "amd64"}
)

// StorageBytes is the size of a full image. The SD card may be larger;
// gokrazy does not grow /perm, so this is also the room /perm gets
// (StorageBytes - 1.1 GB for boot and the two roots).
const StorageBytes = 2 << 30

// Builder runs gok for the repository's gokrazy instance.
type Builder struct {
	Repo    string    // the repository: the gokrazy instance dir (config.json, builddir/)
	Gok     string    // path of the pinned gok binary
	Version string    // stamped into appliance/version.Version
	WorkDir string    // scratch space for derived instances (e.g. .cache/image)
	Log     io.Writer // gok's output
	// Overrides are applied to derived (non-Pi) instances on top of
	// image/<target>/overrides.json; tests use them to build broken
	// releases.
	Overrides map[string]json.RawMessage
	// BuildTime is stamped into the programs (version.BuildTime) as the
	// floor of the battery-less clock; now when zero.
	BuildTime time.Time
	// Publish builds an image for publication (make image PUBLISH=1, make
	// release): it carries no setup code, since every box flashed from it
	// would share it. Each box makes its own on first start
	// (cmd/firstboot). The build fails if a code would end up in it.
	Publish bool
	// FeedURL is the release channel's update feed (make image
	// FEED_URL=…), baked beside the root of trust as
	// /etc/hearth/update-feed-url (config.BakedFeedFile; config.json maps
	// it from keys/feed-url): a fresh box has no update.feed_url in its
	// config and without this would never update. Empty: the box says on
	// its health page that it has no update address.
	FeedURL string
}

// instance returns the parent dir and instance name gok should use for t.
// The Pi image is built from the repository itself (the repository dir is
// the instance dir); the VM image from a derived instance that differs only
// in what image/vm/overrides.json says, so both come from one config.
func (b *Builder) instance(t Target) (parent, name string, err error) {
	repo, err := filepath.Abs(b.Repo)
	if err != nil {
		return "", "", err
	}
	overrides := filepath.Join(repo, "image", t.Name, "overrides.json")
	if t.Name == Pi.Name {
		if len(b.Overrides) == 0 {
			return filepath.Dir(repo), filepath.Base(repo), nil
		}
		// The Pi image is config.json itself; tests' overrides (the
		// emulated Pi's NTP server) go on top of it.
		overrides = ""
	}
	dir := filepath.Join(b.WorkDir, "instances", "hearth-"+t.Name)
	if len(b.Overrides) > 0 {
		dir += "-custom"
	}
	if err := DeriveInstance(repo, overrides, dir, b.Overrides); err != nil {
		return "", "", err
	}
	return filepath.Dir(dir), filepath.Base(dir), nil
}

// gok runs the pinned gok for target t with the given subcommand arguments.
func (b *Builder) gok(t Target, args ...string) error {
	// The image bakes in the update feed's root of trust (keys/root.json,
	// see config.json); keys are made on first use and never committed.
	if _, err := update.LoadOrCreateKeys(filepath.Join(b.Repo, "keys")); err != nil {
		return err
	}
	// Written on every build (empty without a feed): the root file system
	// an update installs carries it too, so a box keeps its feed.
	if strings.ContainsAny(b.FeedURL, " \t\r\n") {
		return fmt.Errorf("feed URL %q: no spaces or line breaks", b.FeedURL)
	}
	if err := os.WriteFile(filepath.Join(b.Repo, "keys", "feed-url"), []byte(b.FeedURL), 0o644); err != nil {
		return fmt.Errorf("feed URL: %w", err)
	}
	parent, name, err := b.instance(t)
	if err != nil {
		return err
	}
	full := append([]string{"--parent_dir", parent, "-i", name}, args...)
	cmd := exec.Command(b.Gok, full...)
	cmd.Stdout = b.Log
	cmd.Stderr = b.Log
	cmd.Env = b.env()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gok %s: %w", strings.Join(full, " "), err)
	}
	return nil
}

// env passes the version to every go build gok runs through GOFLAGS, so the
// committed config.json needs no per-build edits.
func (b *Builder) env() []string {
	var env []string
	goflags := "-buildvcs=false"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "GOFLAGS="):
			goflags = strings.TrimPrefix(kv, "GOFLAGS=")
			continue
		case strings.HasPrefix(kv, "GOWORK="), strings.HasPrefix(kv, "GOARCH="),
			strings.HasPrefix(kv, "GOKRAZY_PARENT_DIR="), strings.HasPrefix(kv, "GOKRAZY_INSTANCE="):
			continue
		}
		env = append(env, kv)
	}
	// The build time is the floor of a Pi's battery-less clock
	// (appliance/clock). GOFLAGS splits on spaces but honours quotes, so
	// one quoted -ldflags carries both -X.
	built := b.BuildTime
	if built.IsZero() {
		built = time.Now()
	}
	ldflags := "-X=github.com/hearthchat/hearth/appliance/version.BuildTime=" + strconv.FormatInt(built.Unix(), 10)
	if b.Version != "" {
		ldflags += " -X=github.com/hearthchat/hearth/appliance/version.Version=" + b.Version
	}
	goflags += " '-ldflags=" + ldflags + "'"
	return append(env, "GOWORK=off", "GOFLAGS="+strings.TrimSpace(goflags))
}

// Full builds a whole disk image for t at dest.
func (b *Builder) Full(t Target, dest string) error {
	dest, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	return b.gok(t, "overwrite", "--full", dest, fmt.Sprintf("--target_storage_bytes=%d", StorageBytes))
}

// Image builds the full image for t at img with a fresh setup code on the
// boot partition and a formatted /perm holding the code and the files under
// permSeed (may be empty). It returns the setup code ("" with Publish).
func (b *Builder) Image(t Target, img, permSeed string) (string, error) {
	if b.Publish && permSeed != "" {
		if _, err := os.Stat(filepath.Join(permSeed, PermSetupCodeFile)); err == nil {
			return "", fmt.Errorf("publish: %s holds a setup code (%s): a published image must carry none", permSeed, PermSetupCodeFile)
		}
	}
	if err := b.Full(t, img); err != nil {
		return "", err
	}
	code, boot := "", setupcard.Placeholder()
	if !b.Publish {
		var err error
		if code, err = NewSetupCode(); err != nil {
			return "", err
		}
		boot = SetupText(code)
	}
	// A published image gets the placeholder: it tells a person who looks
	// at the card too early what to do, and its cluster is room the box
	// fills with its own code.
	if err := WriteBootFile(img, SetupCodeFile, []byte(boot)); err != nil {
		return "", err
	}
	seed, err := os.MkdirTemp("", "hearth-perm")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(seed)
	if permSeed != "" {
		if err := os.CopyFS(seed, os.DirFS(permSeed)); err != nil {
			return "", fmt.Errorf("perm seed: %w", err)
		}
	}
	if code != "" {
		codePath := filepath.Join(seed, PermSetupCodeFile)
		if err := os.MkdirAll(filepath.Dir(codePath), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(codePath, []byte(code+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	if err := FormatPerm(img, seed); err != nil {
		return "", err
	}
	if b.Publish {
		if err := CheckNoSetupCode(img); err != nil {
			os.Remove(img)
			return "", err
		}
	}
	return code, nil
}

// CheckNoSetupCode fails if the image carries a setup code: in the boot
// partition's hearth-setup.txt or on /perm.
func CheckNoSetupCode(img string) error {
	txt, err := ReadBootFile(img, SetupCodeFile)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if c := setupcard.Find(string(txt)); c != "" {
		return fmt.Errorf("publish: %s: the boot partition's %s holds a setup code", img, SetupCodeFile)
	}
	p, err := findPartition(img, 4)
	if err != nil {
		return err
	}
	// debugfs prints "File not found" for a missing file and exits 0
	// either way; a present file prints its contents.
	out, err := exec.Command("debugfs", "-R", "stat /"+PermSetupCodeFile, fmt.Sprintf("%s?offset=%d", img, p.Start)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("publish: debugfs on /perm: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "File not found") {
		return fmt.Errorf("publish: %s: /perm/%s exists: a published image must carry no setup code", img, PermSetupCodeFile)
	}
	return nil
}

// Root builds only the root file system (squashfs) for t: the update payload.
func (b *Builder) Root(t Target, dest string) error {
	dest, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	return b.gok(t, "overwrite", "--root", dest)
}

// DeriveInstance writes a gokrazy instance dir at dst whose config.json is the
// repository's with the fields of overridesPath (if not "") replaced, and whose builddir/
// is a copy of the repository's with relative replace directives made
// absolute (they are relative to the repository, not to dst).
func DeriveInstance(repo, overridesPath, dst string, extra map[string]json.RawMessage) error {
	base, err := os.ReadFile(filepath.Join(repo, "config.json"))
	if err != nil {
		return fmt.Errorf("derive instance: %w", err)
	}
	over := []byte("{}")
	if overridesPath != "" {
		if over, err = os.ReadFile(overridesPath); err != nil {
			return fmt.Errorf("derive instance: %w", err)
		}
	}
	var cfg, ov map[string]json.RawMessage
	if err := json.Unmarshal(base, &cfg); err != nil {
		return fmt.Errorf("derive instance: config.json: %w", err)
	}
	if err := json.Unmarshal(over, &ov); err != nil {
		return fmt.Errorf("derive instance: %s: %w", overridesPath, err)
	}
	for k, v := range ov {
		cfg[k] = v
	}
	for k, v := range extra {
		cfg[k] = v
	}
	if pc, ok := cfg["PackageConfig"]; ok {
		fixed, err := absExtraFiles(pc, repo)
		if err != nil {
			return fmt.Errorf("derive instance: %w", err)
		}
		cfg["PackageConfig"] = fixed
	}
	out, err := json.MarshalIndent(cfg, "", "    ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("derive instance: %w", err)
	}
	if err := writeIfChanged(filepath.Join(dst, "config.json"), append(out, '\n')); err != nil {
		return err
	}
	src := filepath.Join(repo, "builddir")
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, "builddir", rel)
		if d.IsDir() {
			if d.Name() == "bin" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if d.Name() == "go.mod" {
			data = absReplaces(data, filepath.Dir(p))
		}
		return writeIfChanged(target, data)
	})
}

// absExtraFiles makes relative ExtraFilePaths absolute: gok resolves them
// against the instance dir, which for a derived instance is not the repo.
func absExtraFiles(pc json.RawMessage, repo string) (json.RawMessage, error) {
	var m map[string]map[string]json.RawMessage
	if err := json.Unmarshal(pc, &m); err != nil {
		return nil, err
	}
	for _, c := range m {
		raw, ok := c["ExtraFilePaths"]
		if !ok {
			continue
		}
		var paths map[string]string
		if err := json.Unmarshal(raw, &paths); err != nil {
			return nil, err
		}
		for dst, src := range paths {
			if !filepath.IsAbs(src) {
				paths[dst] = filepath.Join(repo, src)
			}
		}
		b, err := json.Marshal(paths)
		if err != nil {
			return nil, err
		}
		c["ExtraFilePaths"] = b
	}
	return json.Marshal(m)
}

// absReplaces rewrites "=> ../x" replace targets relative to dir into
// absolute paths.
func absReplaces(gomod []byte, dir string) []byte {
	lines := strings.Split(string(gomod), "\n")
	for i, l := range lines {
		before, after, ok := strings.Cut(l, "=>")
		if !ok {
			continue
		}
		t := strings.TrimSpace(after)
		if strings.HasPrefix(t, "./") || strings.HasPrefix(t, "../") || t == "." || t == ".." {
			lines[i] = before + "=> " + filepath.Join(dir, t)
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// writeIfChanged keeps mtimes stable so gok and go do not rebuild needlessly.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return os.WriteFile(path, data, 0o644)
}

// FormatPerm creates the ext4 file system of /perm (partition 4) inside the
// image, filled with the files under seed (may be empty). gok leaves /perm
// unformatted and gokrazy's mkfs is not available to us, so the build does it.
func FormatPerm(img, seed string) error {
	p, err := findPartition(img, 4)
	if err != nil {
		return err
	}
	args := []string{"-q", "-F", "-L", "perm", "-E", fmt.Sprintf("offset=%d", p.Start)}
	if seed != "" {
		args = append(args, "-d", seed)
	}
	args = append(args, img, fmt.Sprintf("%dk", p.Size/1024))
	out, err := exec.Command("mkfs.ext4", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("format /perm: mkfs.ext4 %v: %v: %s", args, err, out)
	}
	return nil
}

// WriteBootFile puts a file on the FAT boot partition (partition 1).
func WriteBootFile(img, name string, data []byte) error {
	p, err := findPartition(img, 1)
	if err != nil {
		return err
	}
	if _, err := growFAT(img, p); err != nil {
		return err
	}
	tmp, err := os.CreateTemp("", "hearth-boot-file")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	tmp.Close()
	out, err := exec.Command("mcopy", "-o", "-i", fmt.Sprintf("%s@@%d", img, p.Start), tmp.Name(), "::/"+name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("write %s to boot partition: mcopy: %v: %s", name, err, out)
	}
	return nil
}

// ReadBootFile reads a file from the FAT boot partition.
func ReadBootFile(img, name string) ([]byte, error) {
	p, err := findPartition(img, 1)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("mtype", "-i", fmt.Sprintf("%s@@%d", img, p.Start), "::/"+name).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("read %s from boot partition: mtype: %v: %s", name, err, ee.Stderr)
		}
		return nil, fmt.Errorf("read %s from boot partition: %w", name, err)
	}
	return out, nil
}

func findPartition(img string, n int) (Partition, error) {
	f, err := os.Open(img)
	if err != nil {
		return Partition{}, err
	}
	defer f.Close()
	parts, err := ReadPartitions(f)
	if err != nil {
		return Partition{}, fmt.Errorf("%s: %w", img, err)
	}
	for _, p := range parts {
		if p.Number == n {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("%s: no partition %d", img, n)
}
