package backup

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"filippo.io/age"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/store"
)

// The staging directory beside the state directory (same file system, so
// that its parts move into place by rename), and what is in it.
const (
	stagingSuffix = ".restore"
	readyName     = "READY" // the commit point: present = roll forward
	newName       = "new"   // the unpacked backup
	oldName       = "old"   // the replaced state, deleted at the end
)

// Staging is where a restore of dir is unpacked.
func Staging(dir state.Dir) string { return filepath.Clean(string(dir)) + stagingSuffix }

// Pending reports whether a verified restore waits to be applied.
func Pending(dir state.Dir) bool {
	_, err := os.Stat(filepath.Join(Staging(dir), readyName))
	return err == nil
}

// Read decrypts and checks a backup without unpacking it anywhere (the
// whole file is read: hashes, completeness). It returns the manifest.
func Read(r io.Reader, passphrase string) (*Manifest, error) {
	return unpack(r, passphrase, "")
}

// Stage unpacks the backup read from r into the staging directory beside
// dir and checks it completely: every file against the manifest, the
// database page by page, the config. Only a backup that passes everything
// is marked READY; on any error the staging directory is deleted and the
// state directory was never touched. Apply the staged restore with Resume
// (xmppd does at its start).
func Stage(dir state.Dir, r io.Reader, passphrase string) (*Manifest, error) {
	// One at a time: a second upload (another browser tab) would unpack
	// into the same staging directory.
	if !stageMu.TryLock() {
		return nil, errors.New("restore: another restore is being checked right now")
	}
	defer stageMu.Unlock()
	stg := Staging(dir)
	if Pending(dir) {
		return nil, ErrPending
	}
	if err := os.RemoveAll(stg); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(stg, newName), 0o700); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	// The swap is renames: a state directory that is a mount point of its
	// own would make every rename fail at the next start (EXDEV), and
	// xmppd would not start at all. Refuse that here, while nothing has
	// changed yet.
	if !sameFS(stg, string(dir)) {
		os.RemoveAll(stg)
		return nil, fmt.Errorf("restore: %s and %s are on different file systems; the restore needs them on one", stg, dir)
	}
	m, err := stage(stg, r, passphrase)
	if err != nil {
		os.RemoveAll(stg)
		return nil, err
	}
	return m, nil
}

func stage(stg string, r io.Reader, passphrase string) (*Manifest, error) {
	newDir := filepath.Join(stg, newName)
	m, err := unpack(r, passphrase, newDir)
	if err != nil {
		return nil, err
	}
	if err := store.CheckFile(filepath.Join(newDir, "xmppd.db")); err != nil {
		return nil, fmt.Errorf("restore: %w: the database: %v", ErrDamaged, err)
	}
	cfg, err := config.Load(filepath.Join(newDir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("restore: %w: the config: %v", ErrDamaged, err)
	}
	if cfg.Domain != m.Domain {
		return nil, fmt.Errorf("restore: %w: the config names %q, the manifest %q", ErrDamaged, cfg.Domain, m.Domain)
	}
	// Every item exists in new/ (empty folders for parts the old box did
	// not have): the swap then replaces each part, and leftovers of this
	// box (uploads the backed-up box never had) do not survive a restore.
	for _, it := range items {
		if it.dir {
			if err := os.MkdirAll(filepath.Join(newDir, filepath.FromSlash(it.rel)), 0o700); err != nil {
				return nil, fmt.Errorf("restore: %w", err)
			}
		}
	}
	if err := syncTree(newDir); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	b, _ := json.Marshal(m)
	if err := config.WriteFileAtomic(filepath.Join(stg, readyName), b, 0o600); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := syncDir(filepath.Dir(stg)); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return m, nil
}

// unpack decrypts and reads the archive, writing its files under newDir
// ("" writes nothing) and checking them against the manifest.
func unpack(r io.Reader, passphrase, newDir string) (*Manifest, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", ErrPassphrase)
	}
	id.SetMaxWorkFactor(maxWorkFactor)
	src := &eofReader{r: r}
	br := bufio.NewReader(src)
	if magic, _ := br.Peek(len("age-encryption.org/")); string(magic) != "age-encryption.org/" {
		return nil, fmt.Errorf("restore: %w", ErrNotBackup)
	}
	plain, err := age.Decrypt(br, id)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		switch {
		case errors.As(err, &nomatch):
			return nil, fmt.Errorf("restore: %w", ErrPassphrase)
		case src.eof:
			return nil, fmt.Errorf("restore: %w: %v", ErrTruncated, err)
		}
		return nil, fmt.Errorf("restore: %w: %v", ErrNotBackup, err)
	}
	// age authenticates every 64 KiB chunk and marks the last one: a cut
	// file fails with ErrUnexpectedEOF, an altered one with a decryption
	// error. Either surfaces from the tar reader; classify it once here.
	cr := &classify{r: plain, src: src}
	tr := tar.NewReader(cr)
	next := func() (*tar.Header, error) {
		h, err := tr.Next()
		if err != nil {
			if cr.err != nil {
				return nil, cr.err
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("restore: %w: no manifest at the end", ErrTruncated)
			}
			return nil, fmt.Errorf("restore: %w: %v", ErrDamaged, err)
		}
		return h, nil
	}
	h, err := next()
	if err != nil {
		return nil, err
	}
	if h.Name != headerName || h.Size > 64<<10 {
		return nil, fmt.Errorf("restore: %w: it does not start with its header", ErrNotBackup)
	}
	var hdr Header
	if err := json.NewDecoder(tr).Decode(&hdr); err != nil {
		return nil, fmt.Errorf("restore: %w: header: %v", ErrDamaged, err)
	}
	if hdr.Format > Format {
		return nil, fmt.Errorf("restore: %w (backup format %d from Hearth %s; this box reads format %d)", ErrNewer, hdr.Format, hdr.Version, Format)
	}
	if hdr.Format < 1 {
		return nil, fmt.Errorf("restore: %w: header: format %d", ErrDamaged, hdr.Format)
	}
	got := map[string]File{}
	for {
		h, err := next()
		if err != nil {
			return nil, err
		}
		if h.Name == manifestName {
			if h.Size > 64<<20 {
				return nil, fmt.Errorf("restore: %w: manifest of %d bytes", ErrDamaged, h.Size)
			}
			var m Manifest
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				if cr.err != nil {
					return nil, cr.err
				}
				return nil, fmt.Errorf("restore: %w: manifest: %v", ErrDamaged, err)
			}
			// Read to the end: the last chunk's authentication tag is
			// what proves nothing after this point was cut off.
			if _, err := io.Copy(io.Discard, cr); err != nil {
				return nil, err
			}
			if err := compare(&m, hdr, got); err != nil {
				return nil, err
			}
			return &m, nil
		}
		rel, ok := cleanRel(h.Name)
		if !ok || h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("restore: %w: unexpected entry %q", ErrDamaged, h.Name)
		}
		if _, dup := got[rel]; dup {
			return nil, fmt.Errorf("restore: %w: %q twice", ErrDamaged, rel)
		}
		f, err := writeFile(newDir, rel, tr, cr)
		if err != nil {
			return nil, err
		}
		got[rel] = f
	}
}

// compare checks the files read against the manifest: same set, sizes and
// hashes, the required parts present.
func compare(m *Manifest, hdr Header, got map[string]File) error {
	if m.Header != hdr {
		return fmt.Errorf("restore: %w: manifest and header differ", ErrDamaged)
	}
	if len(m.Files) != len(got) {
		return fmt.Errorf("restore: %w: the manifest lists %d files, the archive holds %d", ErrDamaged, len(m.Files), len(got))
	}
	for _, f := range m.Files {
		g, ok := got[f.Path]
		if !ok {
			return fmt.Errorf("restore: %w: %s is missing", ErrDamaged, f.Path)
		}
		if g != f {
			return fmt.Errorf("restore: %w: %s differs from the manifest", ErrDamaged, f.Path)
		}
	}
	for _, it := range items {
		if _, ok := got[it.rel]; it.required && !ok {
			return fmt.Errorf("restore: %w: %s is missing", ErrDamaged, it.rel)
		}
	}
	return nil
}

func writeFile(newDir, rel string, r io.Reader, cr *classify) (File, error) {
	h := sha256.New()
	var w io.Writer = h
	var f *os.File
	if newDir != "" {
		p := filepath.Join(newDir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return File{}, fmt.Errorf("restore: %w", err)
		}
		var err error
		if f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
			return File{}, fmt.Errorf("restore: %w", err)
		}
		defer f.Close()
		w = io.MultiWriter(f, h)
	}
	n, err := io.Copy(w, r)
	if err != nil {
		if cr.err != nil {
			return File{}, cr.err
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return File{}, fmt.Errorf("restore: %w: %s", ErrTruncated, rel)
		}
		return File{}, fmt.Errorf("restore: %s: %w", rel, err)
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return File{}, fmt.Errorf("restore: %w", err)
		}
		if err := f.Close(); err != nil {
			return File{}, fmt.Errorf("restore: %w", err)
		}
	}
	return File{Path: rel, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// classify turns the decrypting reader's errors into ErrTruncated or
// ErrDamaged and remembers the first. age reports a cut-off file and an
// altered one alike (the last, short chunk fails to authenticate), so the
// difference is where the file ended: a chunk that fails once the whole
// file was read is the end of a cut-off file; one that fails earlier was
// changed. (A changed byte in the very last chunk reads as cut off.)
type classify struct {
	r   io.Reader
	src *eofReader
	err error
}

// eofReader remembers that its reader reached the end.
type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

func (c *classify) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		if errors.Is(err, io.ErrUnexpectedEOF) || c.src.eof {
			c.err = fmt.Errorf("restore: %w: %v", ErrTruncated, err)
		} else {
			c.err = fmt.Errorf("restore: %w: %v", ErrDamaged, err)
		}
		return n, c.err
	}
	return n, err
}

// Resume applies a staged restore of dir, or discards an unfinished one.
// It must run before anything opens the state (xmppd calls it first). It
// reports whether a restore was applied. Each step is a rename that is
// checked before it is done, so running Resume again after a power cut at
// any point finishes the same swap:
//
//	for each item: new/X present → move state/X (if any) to old/X, then
//	new/X to state/X
//	then READY is removed and the staging directory deleted
func Resume(dir state.Dir) (bool, error) {
	stg := Staging(dir)
	if _, err := os.Stat(stg); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if !Pending(dir) {
		// Unpacking never finished (power cut, bad file): the state
		// directory was never touched.
		return false, os.RemoveAll(stg)
	}
	newDir, oldDir := filepath.Join(stg, newName), filepath.Join(stg, oldName)
	for _, it := range items {
		if err := swapItem(string(dir), newDir, oldDir, filepath.FromSlash(it.rel)); err != nil {
			return false, fmt.Errorf("restore: %s: %w", it.rel, err)
		}
	}
	if err := os.Remove(filepath.Join(stg, readyName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("restore: %w", err)
	}
	if err := syncDir(stg); err != nil {
		return false, fmt.Errorf("restore: %w", err)
	}
	return true, os.RemoveAll(stg)
}

var stageMu sync.Mutex

// sameFS reports whether a and b are on one file system (a rename
// between them works).
func sameFS(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		return false
	}
	sa, ok1 := fa.Sys().(*syscall.Stat_t)
	sb, ok2 := fb.Sys().(*syscall.Stat_t)
	return !ok1 || !ok2 || sa.Dev == sb.Dev
}

// crashAfter, when set by a test, stops Resume after that many renames as
// a power cut would.
var crashAfter = -1

var errCrash = errors.New("simulated power cut")

func swapItem(stateDir, newDir, oldDir, rel string) error {
	src := filepath.Join(newDir, rel)
	if _, err := os.Lstat(src); errors.Is(err, os.ErrNotExist) {
		return nil // moved in by an earlier run
	}
	dst := filepath.Join(stateDir, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		aside := filepath.Join(oldDir, rel)
		if err := os.MkdirAll(filepath.Dir(aside), 0o700); err != nil {
			return err
		}
		if _, err := os.Lstat(aside); err == nil {
			// An earlier run moved this aside and then had new/X moved
			// in — impossible while new/X exists, unless the old one
			// came back; keep the first old copy.
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
		} else if err := os.Rename(dst, aside); err != nil {
			return err
		}
		if err := step(filepath.Dir(dst), filepath.Dir(aside)); err != nil {
			return err
		}
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	return step(filepath.Dir(dst), filepath.Dir(src))
}

// step makes a rename durable (both directories synced) and counts it for
// the crash test.
func step(dirs ...string) error {
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	if crashAfter == 0 {
		return errCrash
	}
	if crashAfter > 0 {
		crashAfter--
	}
	return nil
}

// syncTree syncs every directory under root (the files were synced as they
// were written), so that the unpacked tree survives a power cut before
// READY is written.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return syncDir(p)
		}
		return nil
	})
}

// Describe is a one-line account of a manifest for people.
func Describe(m *Manifest) string {
	var uploads int
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, "uploads/") {
			uploads++
		}
	}
	return fmt.Sprintf("%s, made %s by Hearth %s: %d files (%d uploads), %.1f MB",
		m.Domain, m.Created.Local().Format("2 Jan 2006 15:04"), m.Version, len(m.Files), uploads, float64(m.Bytes())/1e6)
}
