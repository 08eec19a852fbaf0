package backup

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/appliance/config"
	"github.com/hearthchat/hearth/appliance/state"
	"github.com/hearthchat/hearth/xmppd/mod/mam"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// The box of issue 15's closing figure: 50 members, each with an archive,
// and 1 GiB of uploads.
const (
	figMembers     = 50
	figArchived    = 1000    // messages in each member's archive
	figUploadBytes = 1 << 30 // all uploads together
	figDomain      = "club.example"
)

// BenchmarkBackup50Members1GB makes the nightly backup of a generated box
// (50 members with 1,000 archived messages each, 1 GiB of incompressible
// uploads in the upload module's layout) through WriteDir, the path the
// schedule takes to a USB stick (the admin page's download is Write, the
// same work without the file's sync and rename), with the real scrypt work
// factor, then restores it onto an empty state directory (Stage, which
// checks every file and the database, and Resume). It reports the backup's
// size and time, the restore's time, and the process's peak RSS during
// the backup. A benchmark and not a test: generating the box takes a
// minute, and the figures mean nothing as a pass or fail.
//
//	go test -run '^$' -bench BenchmarkBackup50Members1GB -benchtime 1x -count 3 -timeout 30m ./appliance/backup/
//
// Figures: bench/README.md, "Figures: your data (issue 15)".
func BenchmarkBackup50Members1GB(b *testing.B) {
	prev := workFactor
	workFactor = WorkFactor // TestMain lowers it for the unit tests
	defer func() { workFactor = prev }()

	root := b.TempDir()
	dir := state.Dir(filepath.Join(root, "hearth"))
	genStart := time.Now()
	st := figBox(b, dir)
	defer st.Close()
	b.Logf("generated %d members × %d archived messages, %d MiB of uploads in %v", figMembers, figArchived, figUploadBytes>>20, time.Since(genStart).Round(time.Second))
	dbInfo, err := os.Stat(dir.DB())
	if err != nil {
		b.Fatal(err)
	}
	// The running server's way: the open store's live copy.
	src := Source{Dir: dir, Domain: figDomain, Version: "bench",
		DB: func(w io.Writer) error { _, err := st.Backup(w); return err }}
	stick := filepath.Join(root, "stick")
	if err := os.Mkdir(stick, 0o700); err != nil {
		b.Fatal(err)
	}

	// The peak RSS of the backup alone: the generation's buffers are
	// returned and the kernel's high-water mark reset first.
	runtime.GC()
	debug.FreeOSMemory()
	hwmReset := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)

	var file string
	var m *Manifest
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src.Now = time.Now().Add(time.Duration(i) * time.Second) // a new name each run
		file, m, err = WriteDir(stick, 1, src, pass)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	took := b.Elapsed() / time.Duration(b.N)
	hwm, hwmErr := vmHWM()
	fi, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	if m.Bytes() < figUploadBytes+dbInfo.Size()/2 {
		b.Fatalf("the backup holds %d bytes of files: the uploads (%d) or the database (%d) are missing", m.Bytes(), figUploadBytes, dbInfo.Size())
	}
	b.Logf("backup: %d files, %d bytes of files (database %d), backup file %d bytes, %.1f s, %.0f MB/s",
		len(m.Files), m.Bytes(), dbInfo.Size(), fi.Size(), took.Seconds(), float64(m.Bytes())/took.Seconds()/1e6)
	if hwmReset == nil && hwmErr == nil {
		b.Logf("backup: peak RSS of the process %.1f MiB (VmHWM after clear_refs)", float64(hwm)/(1<<20))
	} else {
		b.Logf("backup: peak RSS not measured: %v %v", hwmReset, hwmErr)
	}

	// Restore onto a freshly flashed card's state directory.
	dst := state.Dir(filepath.Join(root, "restored"))
	if err := dst.Ensure(); err != nil {
		b.Fatal(err)
	}
	restoreStart := time.Now()
	f, err := os.Open(file)
	if err != nil {
		b.Fatal(err)
	}
	rm, err := Stage(dst, bufio.NewReaderSize(f, 1<<20), pass)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	if applied, err := Resume(dst); err != nil || !applied {
		b.Fatalf("Resume: %v %v", applied, err)
	}
	restoreTook := time.Since(restoreStart)
	if rm.Bytes() != m.Bytes() {
		b.Fatalf("restored %d bytes of files, backed up %d", rm.Bytes(), m.Bytes())
	}
	figCheckRestored(b, dst)
	b.Logf("restore (Stage + Resume): %.1f s", restoreTook.Seconds())

	b.ReportMetric(float64(fi.Size()), "backup-bytes")
	b.ReportMetric(took.Seconds(), "backup-s")
	b.ReportMetric(restoreTook.Seconds(), "restore-s")
}

// figBox generates the box: config, certificate, 50 accounts with their
// archives, 1 GiB of uploads. It returns the open store (a running
// server's backup copies the open database).
func figBox(b *testing.B, dir state.Dir) *store.Store {
	b.Helper()
	if err := dir.Ensure(); err != nil {
		b.Fatal(err)
	}
	c := config.Default()
	c.Domain, c.Claimed = figDomain, true
	if err := config.Save(dir.Config(), c); err != nil {
		b.Fatal(err)
	}
	for rel, body := range map[string]string{
		"tls/cert.pem":                    strings.Repeat("certificate ", 100),
		"tls/key.pem":                     strings.Repeat("key ", 60),
		"tor/onion/hs_ed25519_secret_key": strings.Repeat("k", 96),
	} {
		p := filepath.Join(string(dir), rel)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	st, err := store.Open(dir.DB())
	if err != nil {
		b.Fatal(err)
	}
	cc := rand.NewChaCha8([32]byte{15}) // the same box every run
	rng := rand.New(cc)
	base := mam.IDAt(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	for u := 0; u < figMembers; u++ {
		user := fmt.Sprintf("member%02d", u)
		if err := st.CreateAccount(user, "password of "+user, false); err != nil {
			st.Close()
			b.Fatal(err)
		}
		// Chats with other members, bodies of 20 to 300 characters (a
		// chat line to a short paragraph).
		err := st.Update(func(tx *bolt.Tx) error {
			for i := 0; i < figArchived; i++ {
				peer := fmt.Sprintf("member%02d@%s", (u+1+rng.IntN(figMembers-1))%figMembers, figDomain)
				self := user + "@" + figDomain
				out := rng.IntN(2) == 0
				from, to := peer+"/phone", self+"/laptop"
				if out {
					from, to = to, from
				}
				body := strings.Repeat("words ", 3+rng.IntN(48))
				m := stream.New(stream.NSClient, "message", "from", from, "to", to, "type", "chat", "id", strconv.Itoa(i)).
					Add(stream.New(stream.NSClient, "body").AddText(body))
				if err := mam.ImportTx(st, tx, user, out, peer, m, base+uint64(i)*60_000_000); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			st.Close()
			b.Fatal(err)
		}
	}
	// Uploads: photos, voice notes and short videos, 64 KiB to 12 MiB,
	// random bytes (already-compressed media does not compress either),
	// named as the upload module names them (32 hex digits, flat in
	// uploads/).
	up := dir.Uploads()
	if err := os.MkdirAll(up, 0o700); err != nil {
		st.Close()
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for left := int64(figUploadBytes); left > 0; {
		size := min(left, 64<<10+rng.Int64N(12<<20))
		var name [16]byte
		cc.Read(name[:])
		if err := figWrite(filepath.Join(up, hex.EncodeToString(name[:])), size, cc, buf); err != nil {
			st.Close()
			b.Fatal(err)
		}
		left -= size
	}
	return st
}

func figWrite(path string, size int64, rng *rand.ChaCha8, buf []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	for n := size; n > 0; {
		chunk := buf[:min(n, int64(len(buf)))]
		rng.Read(chunk)
		if _, err := f.Write(chunk); err != nil {
			f.Close()
			return err
		}
		n -= int64(len(chunk))
	}
	return f.Close()
}

// figCheckRestored: the restored box has every member with the whole
// archive, and the uploads.
func figCheckRestored(b *testing.B, dst state.Dir) {
	b.Helper()
	st, err := store.Open(dst.DB())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	users, err := st.Users()
	if err != nil || len(users) != figMembers {
		b.Fatalf("restored members: %d, %v", len(users), err)
	}
	err = st.View(func(tx *bolt.Tx) error {
		n := 0
		if err := mam.EachTx(tx, users[len(users)-1], func(mam.Record) error { n++; return nil }); err != nil {
			return err
		}
		if n != figArchived {
			return fmt.Errorf("%s: %d archived messages after restore, want %d", users[len(users)-1], n, figArchived)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	ents, err := os.ReadDir(dst.Uploads())
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			total += fi.Size()
		}
	}
	if total != figUploadBytes {
		b.Fatalf("restored uploads: %d bytes, want %d", total, figUploadBytes)
	}
}

// vmHWM is the process's peak resident set since start or the last write
// of 5 to /proc/self/clear_refs.
func vmHWM() (int64, error) {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(s), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
