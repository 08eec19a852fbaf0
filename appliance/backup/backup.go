// Package backup makes and restores a whole box's backup: one file that
// holds everything a fresh SD card needs to come back as the same box
// (same domain, accounts, history, uploads, certificates, onion address).
//
// # Format
//
// A backup is age(tar), encrypted to a passphrase the admin chooses
// (filippo.io/age's scrypt recipient: scrypt for the key, ChaCha20-Poly1305
// in 64 KiB chunks, so a truncated or altered file is detected, not
// half-read). The tar holds, in this order:
//
//	HEADER.json    format, Hearth version, domain, time (read first, so a
//	               backup from a newer Hearth is refused before anything is
//	               unpacked)
//	state/...      the files, named relative to the state directory
//	MANIFEST.json  the header again and every file with its size and SHA-256
//	               (last, because the hashes are known only after the files;
//	               a tar without it is incomplete)
//
// # What is in it
//
// The database (a consistent copy taken in one read transaction while the
// server runs: store.Backup, or the admin socket's GET /backup/db), the
// appliance config, tls/ (certificates and keys), acme/ (netconf's ACME
// account), uploads/ and tor/onion/ (the onion service's key: a new key would be a new
// address). Left out because they belong to the card, not the box: the
// setup code, the update agent's floors and downloads, status files, the
// saved clock, tor's cache (tor/data), sockets.
//
// # Restore
//
// Stage unpacks into a directory beside the state directory, checks every
// file against the manifest and the database page by page, and only then
// writes a READY mark. Resume (called by xmppd before it opens anything)
// moves the items into place one rename at a time; every step can be
// repeated, so a power cut at any point is finished at the next start. A
// staging directory without READY is an unfinished unpack and is deleted.
package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/store"
)

// Format is the archive layout this code writes. A restore refuses a
// higher one: it may hold state this version does not know how to place.
const Format = 1

// WorkFactor is scrypt's log2(N) for new backups. age's default (18) needs
// 256 MiB of memory, half of a Pi Zero 2 W's RAM beside the running chat
// server; 16 needs 64 MiB and about 0.2 s on a laptop. The passphrase is
// the admin's, so the page asks for a long one.
const WorkFactor = 16

// workFactor is WorkFactor; the unit tests lower it (each scrypt run costs
// them a fraction of a second on a loaded 2-core machine, and they run
// dozens); the e2e tests use the real one.
var workFactor = WorkFactor

// maxWorkFactor bounds what a restore accepts from a file (memory is
// 128 MiB << (n-17)): a crafted header must not exhaust a Pi.
const maxWorkFactor = 18

// MinPassphrase is the shortest passphrase accepted for a new backup.
const MinPassphrase = 10

// Names inside the tar.
const (
	headerName   = "HEADER.json"
	manifestName = "MANIFEST.json"
	statePrefix  = "state/"
)

// Errors a restore reports; each wraps what went wrong in detail.
var (
	ErrPassphrase = errors.New("wrong passphrase for this backup")
	ErrTruncated  = errors.New("the backup file is incomplete (cut off)")
	ErrDamaged    = errors.New("the backup file is damaged")
	ErrNotBackup  = errors.New("this is not a Hearth backup file")
	ErrNewer      = errors.New("this backup was made by a newer Hearth; update this box first")
	ErrPending    = errors.New("a restore is already waiting to be applied at the next start")
)

// Header describes a backup.
type Header struct {
	Format  int       `json:"format"`
	Version string    `json:"version"` // Hearth's version that made it
	Domain  string    `json:"domain"`
	Created time.Time `json:"created"`
}

// File is one file in a backup.
type File struct {
	Path   string `json:"path"` // relative to the state directory, slash-separated
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest is the list a restore checks the archive against.
type Manifest struct {
	Header
	Files []File `json:"files"`
}

// Bytes is the total size of the files.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// item is a top-level part of the state a backup carries.
type item struct {
	rel      string // relative to the state directory
	dir      bool
	required bool
}

var items = []item{
	{rel: "xmppd.db", required: true},
	{rel: "config.json", required: true},
	{rel: "tls", dir: true},
	{rel: "uploads", dir: true},
	{rel: "tor/onion", dir: true},
	// netconf's ACME account (netconf/acme): the restored box asks for
	// its certificate as the same account (no new registration, the
	// account's rate limits and authorizations carry over).
	{rel: "acme", dir: true},
}

// inItems reports whether rel (slash-separated) belongs to a backed-up item.
func inItems(rel string) bool {
	for _, it := range items {
		if rel == it.rel && !it.dir || it.dir && strings.HasPrefix(rel, it.rel+"/") {
			return true
		}
	}
	return false
}

// Source is the box to back up.
type Source struct {
	Dir     state.Dir
	Domain  string
	Version string
	// DB writes a consistent copy of the database: store.Backup of the
	// open store, or the running server's admin socket.
	DB func(io.Writer) error
	// Now is the time written in the header (tests); zero: time.Now.
	Now time.Time
	// Log gets the nightly backup's outcome (nil: slog.Default, which
	// is xmppd's stderr: gokrazy's log of the service).
	Log *slog.Logger
}

func (s Source) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Write writes an encrypted backup of src to w.
func Write(w io.Writer, src Source, passphrase string) (*Manifest, error) {
	if len(passphrase) < MinPassphrase {
		return nil, fmt.Errorf("backup: the passphrase needs at least %d characters", MinPassphrase)
	}
	rcpt, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	rcpt.SetWorkFactor(workFactor)
	// The database first, to a file: tar needs its size before its bytes,
	// and the copy is page-checked before it goes into a backup someone
	// will rely on. Beside the state, not in $TMPDIR: on the box that is
	// RAM, and the database can be larger than the free memory.
	removeStaleSpools(src.Dir)
	spool, err := os.CreateTemp(string(src.Dir), spoolPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	if err := src.DB(spool); err != nil {
		return nil, fmt.Errorf("backup: database copy: %w", err)
	}
	if err := spool.Sync(); err != nil {
		return nil, fmt.Errorf("backup: database copy: %w", err)
	}
	if err := store.CheckFile(spool.Name()); err != nil {
		return nil, fmt.Errorf("backup: database copy: %w", err)
	}

	now := src.Now
	if now.IsZero() {
		now = time.Now()
	}
	m := &Manifest{Header: Header{Format: Format, Version: src.Version, Domain: src.Domain, Created: now.UTC()}}
	aw, err := age.Encrypt(w, rcpt)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	tw := tar.NewWriter(aw)
	if err := writeJSON(tw, headerName, m.Header, now); err != nil {
		return nil, err
	}
	add := func(rel string, f *os.File) error {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("backup: %s: %w", rel, err)
		}
		hdr := &tar.Header{Name: statePrefix + rel, Mode: 0o600, Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("backup: %s: %w", rel, err)
		}
		h := sha256.New()
		// Exactly the size announced: a file that grows meanwhile is cut at
		// it, one that shrinks is an error (the tar would be invalid).
		n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(f, fi.Size()))
		if err != nil {
			return fmt.Errorf("backup: %s: %w", rel, err)
		}
		if n != fi.Size() {
			return fmt.Errorf("backup: %s shrank while being read", rel)
		}
		m.Files = append(m.Files, File{Path: rel, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := add("xmppd.db", spool); err != nil {
		return nil, err
	}
	for _, it := range items[1:] {
		root := filepath.Join(string(src.Dir), filepath.FromSlash(it.rel))
		var paths []string
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && !it.required {
					return nil
				}
				return err
			}
			if d.Type().IsRegular() {
				paths = append(paths, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("backup: %s: %w", it.rel, err)
		}
		sort.Strings(paths)
		for _, p := range paths {
			rel, _ := filepath.Rel(string(src.Dir), p)
			f, err := os.Open(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile (an upload past its retention)
			}
			if err != nil {
				return nil, fmt.Errorf("backup: %w", err)
			}
			err = add(filepath.ToSlash(rel), f)
			f.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	if err := writeJSON(tw, manifestName, m, now); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

const spoolPrefix = ".backup-db-"

// removeStaleSpools deletes database copies left by a backup that was cut
// off (power, kill -9): each is as large as the database. Only old ones: a
// backup running now (the nightly one while the admin downloads) has
// its copy open by name for the page check.
func removeStaleSpools(dir state.Dir) {
	old, _ := filepath.Glob(filepath.Join(string(dir), spoolPrefix+"*"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > 12*time.Hour {
			os.Remove(p)
		}
	}
}

func writeJSON(tw *tar.Writer, name string, v any, now time.Time) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := tw.Write(b); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Suffix ends every backup file's name.
const Suffix = ".hearth-backup"

// FileName is the name a backup made at t gets.
func FileName(domain string, t time.Time) string {
	d := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, strings.ToLower(domain))
	return "hearth-" + d + "-" + t.UTC().Format("20060102-150405") + Suffix
}

// WriteDir writes a backup into dir (a USB stick's folder) and keeps the
// newest keep backups there. The file is written under a temporary name,
// synced, then renamed and the directory synced: a stick pulled (or the
// power cut) before the rename leaves only a temporary file, which the
// next run deletes, and the earlier backups untouched. Older backups are
// deleted only after the new one is complete. It returns the new file.
func WriteDir(dir string, keep int, src Source, passphrase string) (string, *Manifest, error) {
	if keep < 1 {
		keep = 1
	}
	if src.Now.IsZero() {
		src.Now = time.Now()
	}
	name := FileName(src.Domain, src.Now)
	// A missing folder is most often a stick that is not plugged in (or
	// not mounted): say that rather than the temporary file's name.
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", nil, fmt.Errorf("backup: %s is not a folder the box can write to (is the USB stick plugged in?)", dir)
	}
	// Leftovers of an interrupted run hold half a backup: never useful.
	if old, _ := filepath.Glob(filepath.Join(dir, ".*"+Suffix+".tmp*")); len(old) > 0 {
		for _, p := range old {
			os.Remove(p)
		}
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return "", nil, fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	m, err := Write(f, src, passphrase)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", nil, fmt.Errorf("backup: writing to %s: %w", dir, err)
	}
	final := filepath.Join(dir, name)
	if err := os.Rename(tmp, final); err != nil {
		return "", nil, fmt.Errorf("backup: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", nil, fmt.Errorf("backup: %w", err)
	}
	prune(dir, keep)
	return final, m, nil
}

// prune deletes all but the newest keep backups in dir (names sort by time).
func prune(dir string, keep int) {
	names, _ := filepath.Glob(filepath.Join(dir, "hearth-*"+Suffix))
	sort.Strings(names)
	for len(names) > keep {
		os.Remove(names[0])
		names = names[1:]
	}
}

// List returns the backups in dir, newest first.
func List(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "hearth-*"+Suffix))
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	return names, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// cleanRel checks a name from the archive and returns it relative to the
// state directory; names outside the backed-up items are refused, so a
// crafted archive cannot write anywhere else.
func cleanRel(name string) (string, bool) {
	if !strings.HasPrefix(name, statePrefix) {
		return "", false
	}
	rel := strings.TrimPrefix(name, statePrefix)
	if rel == "" || path.Clean(rel) != rel || strings.HasPrefix(rel, "/") || strings.Contains(rel, "..") || strings.Contains(rel, "\\") {
		return "", false
	}
	return rel, inItems(rel)
}
