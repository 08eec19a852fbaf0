package backup

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/store"
)

const pass = "correct horse battery"

// box makes a state directory with accounts, a config, a certificate, an
// onion key, uploads and the things a backup leaves out. tag makes two
// boxes' contents differ.
func box(t *testing.T, dir state.Dir, domain, tag string, users ...string) {
	t.Helper()
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir.DB())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if err := st.CreateAccount(u, u+" password", false); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	c := config.Default()
	c.Domain, c.Claimed = domain, true
	if err := config.Save(dir.Config(), c); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"tls/cert.pem":                      "cert " + tag,
		"tls/key.pem":                       "key " + tag,
		"tor/onion/hs_ed25519_secret_key":   "onion " + tag,
		"acme/acme-v02/users/x/x.key":       "acme account " + tag,
		"uploads/ab/cdef/photo.jpg":         strings.Repeat("jpeg "+tag, 30000),
		"uploads/" + tag + "/only-here.txt": tag,
		"tor/data/cached-microdescs":        "cache " + tag, // left out
		"update/floor.json":                 "floor " + tag, // left out
		"setup-code":                        "code " + tag,  // left out
		"status/netconf.json":               "{}",
	}
	for rel, body := range files {
		p := filepath.Join(string(dir), rel)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func source(t *testing.T, dir state.Dir, domain string) Source {
	return Source{Dir: dir, Domain: domain, Version: "test", DB: func(w io.Writer) error {
		st, err := store.Open(dir.DB())
		if err != nil {
			return err
		}
		defer st.Close()
		_, err = st.Backup(w)
		return err
	}}
}

// tree is every regular file under dir with its contents.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	return out
}

func makeBackup(t *testing.T) ([]byte, map[string]string) {
	t.Helper()
	src := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	box(t, src, "club.example", "old", "anna", "bert")
	var buf bytes.Buffer
	m, err := Write(&buf, source(t, src, "club.example"), pass)
	if err != nil {
		t.Fatal(err)
	}
	if m.Domain != "club.example" || len(m.Files) != 8 {
		t.Fatalf("manifest %+v", m)
	}
	return buf.Bytes(), tree(t, string(src))
}

// TestRoundTrip: a backup restored onto another box's state directory
// makes it the backed-up box (accounts, config, keys, uploads), removes
// what the other box had in those parts, and keeps the card's own files.
func TestRoundTrip(t *testing.T) {
	data, want := makeBackup(t)
	dst := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	box(t, dst, "fresh.example", "new", "zoe")
	before := tree(t, string(dst))

	m, err := Stage(dst, bytes.NewReader(data), pass)
	if err != nil {
		t.Fatal(err)
	}
	if !Pending(dst) || m.Domain != "club.example" {
		t.Fatalf("pending %v, manifest %+v", Pending(dst), m)
	}
	// Staging touched nothing.
	if got := tree(t, string(dst)); !mapsEqual(got, before) {
		t.Fatal("Stage changed the state directory")
	}
	applied, err := Resume(dst)
	if err != nil || !applied {
		t.Fatalf("Resume: %v %v", applied, err)
	}
	checkRestored(t, dst, want, before)
	if _, err := os.Stat(Staging(dst)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging left behind: %v", err)
	}
	if applied, err := Resume(dst); applied || err != nil {
		t.Fatalf("second Resume: %v %v", applied, err)
	}
}

// checkRestored: the backed-up parts are the old box's, the card's own
// files (setup code, update floors, tor cache, status) this box's.
func checkRestored(t *testing.T, dst state.Dir, want, before map[string]string) {
	t.Helper()
	got := tree(t, string(dst))
	for rel, body := range got {
		if inItems(rel) {
			if rel == "xmppd.db" {
				continue
			}
			if want[rel] != body {
				t.Errorf("%s: %.20q, want the backup's %.20q", rel, body, want[rel])
			}
		} else if before[rel] != body {
			t.Errorf("%s (not backed up) changed", rel)
		}
	}
	for rel := range want {
		if _, ok := got[rel]; inItems(rel) && !ok {
			t.Errorf("%s missing after restore", rel)
		}
	}
	if _, ok := got["uploads/new/only-here.txt"]; ok {
		t.Error("an upload of the replaced box survived the restore")
	}
	st, err := store.Open(dst.DB())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users, _ := st.Users()
	if !slices.Contains(users, "anna") || slices.Contains(users, "zoe") {
		t.Fatalf("users after restore: %v", users)
	}
	c, err := config.Load(dst.Config())
	if err != nil || c.Domain != "club.example" {
		t.Fatalf("config after restore: %v %v", c, err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestBadBackups: a wrong passphrase, a cut-off file at many lengths, a
// changed byte, a file that is no backup: each a clear error, nothing
// staged, the state untouched.
func TestBadBackups(t *testing.T) {
	data, _ := makeBackup(t)
	dst := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	box(t, dst, "fresh.example", "new", "zoe")
	before := tree(t, string(dst))
	try := func(name string, b []byte, pw string, want error) {
		t.Helper()
		_, err := Stage(dst, bytes.NewReader(b), pw)
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
		if _, err := os.Stat(Staging(dst)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: staging directory left", name)
		}
	}
	try("wrong passphrase", data, "not the passphrase", ErrPassphrase)
	for _, n := range []int{20, 150, 300, 70000, len(data) / 2, len(data) - 17, len(data) - 1} {
		try("truncated", data[:n], pass, ErrTruncated)
	}
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 1
	try("flipped byte", bad, pass, ErrDamaged)
	try("not a backup", []byte("PK\x03\x04 a zip file"), pass, ErrNotBackup)
	try("empty", nil, pass, ErrNotBackup)
	if got := tree(t, string(dst)); !mapsEqual(got, before) {
		t.Fatal("a failed restore changed the state directory")
	}
	if _, err := Read(bytes.NewReader(data), pass); err != nil {
		t.Fatalf("Read of the good backup: %v", err)
	}
}

// craft writes an archive by hand (for what Write never makes).
func craft(t *testing.T, hdr Header, extra func(*tar.Writer)) []byte {
	t.Helper()
	r, _ := age.NewScryptRecipient(pass)
	r.SetWorkFactor(10)
	var buf bytes.Buffer
	aw, _ := age.Encrypt(&buf, r)
	tw := tar.NewWriter(aw)
	b, _ := json.Marshal(hdr)
	tw.WriteHeader(&tar.Header{Name: headerName, Mode: 0o600, Size: int64(len(b))})
	tw.Write(b)
	if extra != nil {
		extra(tw)
	}
	tw.Close()
	aw.Close()
	return buf.Bytes()
}

func TestNewerFormatRefused(t *testing.T) {
	data := craft(t, Header{Format: Format + 1, Version: "99.0", Domain: "club.example", Created: time.Now()}, nil)
	dst := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	_, err := Stage(dst, bytes.NewReader(data), pass)
	if !errors.Is(err, ErrNewer) || !strings.Contains(err.Error(), "99.0") {
		t.Fatalf("got %v, want ErrNewer naming the version", err)
	}
}

// TestEntryOutsideState: an archive naming a path outside the backed-up
// parts (a crafted file) is refused before anything is written there.
func TestEntryOutsideState(t *testing.T) {
	for _, name := range []string{"state/../../evil", "state/setup-code", "/etc/passwd", "state/uploads/../../x"} {
		data := craft(t, Header{Format: Format, Domain: "x"}, func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: 4})
			tw.Write([]byte("evil"))
		})
		dst := state.Dir(filepath.Join(t.TempDir(), "hearth"))
		if _, err := Stage(dst, bytes.NewReader(data), pass); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v, want ErrDamaged", name, err)
		}
	}
}

// TestInterruptedRestore: a power cut after any rename of the swap (and
// before READY) leaves, after the next start's Resume, either the old
// state (cut before READY) or the complete new one, never a mix.
func TestInterruptedRestore(t *testing.T) {
	data, want := makeBackup(t)
	defer func() { crashAfter = -1 }()
	for n := 0; ; n++ {
		dst := state.Dir(filepath.Join(t.TempDir(), "hearth"))
		box(t, dst, "fresh.example", "new", "zoe")
		before := tree(t, string(dst))
		if _, err := Stage(dst, bytes.NewReader(data), pass); err != nil {
			t.Fatal(err)
		}
		crashAfter = n
		_, err := Resume(dst)
		crashAfter = -1
		if err == nil {
			if n < 5 {
				t.Fatalf("the swap finished after %d renames; expected at least 5 steps", n)
			}
			checkRestored(t, dst, want, before)
			return
		}
		if !errors.Is(err, errCrash) {
			t.Fatalf("step %d: %v", n, err)
		}
		// The next start.
		if applied, err := Resume(dst); err != nil || !applied {
			t.Fatalf("step %d: Resume after the cut: %v %v", n, applied, err)
		}
		checkRestored(t, dst, want, before)
	}
}

// TestUnfinishedStagingDiscarded: staging cut off before READY (power
// lost while unpacking) is deleted at the next start; the old state stays.
func TestUnfinishedStagingDiscarded(t *testing.T) {
	data, _ := makeBackup(t)
	dst := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	box(t, dst, "fresh.example", "new", "zoe")
	before := tree(t, string(dst))
	if _, err := Stage(dst, bytes.NewReader(data), pass); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(Staging(dst), readyName))
	if applied, err := Resume(dst); applied || err != nil {
		t.Fatalf("Resume: %v %v", applied, err)
	}
	if got := tree(t, string(dst)); !mapsEqual(got, before) {
		t.Fatal("an unfinished staging changed the state")
	}
	if _, err := os.Stat(Staging(dst)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("unfinished staging not deleted")
	}
}

// TestWriteDirKeepsCopies: the stick keeps the newest N; a backup that
// fails half-way (the stick pulled) leaves the earlier ones and no
// partial file behind.
func TestWriteDirKeepsCopies(t *testing.T) {
	src := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	box(t, src, "club.example", "old", "anna")
	stick := t.TempDir()
	s := source(t, src, "club.example")
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	for i := range 4 {
		s.Now = t0.Add(time.Duration(i) * 24 * time.Hour)
		if _, _, err := WriteDir(stick, 3, s, pass); err != nil {
			t.Fatal(err)
		}
	}
	list, _ := List(stick)
	if len(list) != 3 || !strings.Contains(list[0], "20261204") || !strings.Contains(list[2], "20261202") {
		t.Fatalf("kept %v", list)
	}
	pulled := s
	pulled.Now = t0.Add(10 * 24 * time.Hour)
	pulled.DB = func(w io.Writer) error {
		w.Write(make([]byte, 4096))
		return errors.New("write /media/stick: input/output error")
	}
	if _, _, err := WriteDir(stick, 3, pulled, pass); err == nil {
		t.Fatal("a failed backup reported success")
	}
	after, _ := List(stick)
	if !slices.Equal(after, list) {
		t.Fatalf("after a failed backup: %v, want %v", after, list)
	}
	if all, _ := os.ReadDir(stick); len(all) != 3 {
		t.Fatalf("stick holds %d entries, want the 3 backups", len(all))
	}
	// No stick at all (the folder is gone): said in words.
	if _, _, err := WriteDir(filepath.Join(stick, "not-mounted"), 3, s, pass); err == nil || !strings.Contains(err.Error(), "is the USB stick plugged in?") {
		t.Fatalf("backup to a missing folder: %v", err)
	}
	// Each kept copy restores.
	f, _ := os.Open(list[0])
	defer f.Close()
	if _, err := Read(f, pass); err != nil {
		t.Fatal(err)
	}
}

func TestShortPassphraseRefused(t *testing.T) {
	src := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	box(t, src, "club.example", "old", "anna")
	if _, err := Write(io.Discard, source(t, src, "club.example"), "short"); err == nil {
		t.Fatal("a 5-character passphrase was accepted")
	}
}

// TestStaleSpoolRemoved: a database copy left by a cut-off backup is
// deleted by the next one; a fresh one (a backup running now) is not.
func TestStaleSpoolRemoved(t *testing.T) {
	src := state.Dir(filepath.Join(t.TempDir(), "hearth"))
	box(t, src, "club.example", "old", "anna")
	stale := filepath.Join(string(src), spoolPrefix+"123")
	fresh := filepath.Join(string(src), spoolPrefix+"456")
	os.WriteFile(stale, make([]byte, 1000), 0o600)
	os.WriteFile(fresh, make([]byte, 1000), 0o600)
	old := time.Now().Add(-24 * time.Hour)
	os.Chtimes(stale, old, old)
	if _, err := Write(io.Discard, source(t, src, "club.example"), pass); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Error("stale database copy left")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a running backup's copy was deleted")
	}
}

// TestSameFS: the check that keeps a restore from staging where the swap
// could not rename (a state directory on a file system of its own).
func TestSameFS(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if !sameFS(a, b) {
		t.Fatal("two temporary directories reported on different file systems")
	}
	if sameFS("/proc", a) {
		t.Fatal("/proc and a temporary directory reported as one file system")
	}
}

func TestMain(m *testing.M) {
	workFactor = 10
	os.Exit(m.Run())
}
