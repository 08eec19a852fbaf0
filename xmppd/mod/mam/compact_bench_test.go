package mam

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hearthchat/hearth/xmppd/server"
	"github.com/hearthchat/hearth/xmppd/store"
	"github.com/hearthchat/hearth/xmppd/stream"
)

// BenchmarkCompactAfterRetention measures issue 15's compaction figure on
// the archive as it really is on disk: 50 members with 8,000 archived
// chat messages each over 120 days (in the archive's own segments, through
// ImportTx), then the admin shortens retention to 30 days and the
// retention sweep (the real one, tick by tick) deletes the older three
// quarters. Each run compacts a fresh copy of that file through xmppd's
// start path (xmppd/compact.go: Open, WorthCompacting, Close,
// store.CompactFile, Open) and reports its time, CompactFile's own, and
// the bytes returned to the file system.
//
//	go test -run '^$' -bench BenchmarkCompactAfterRetention -benchtime 1x -count 3 -timeout 30m ./xmppd/mod/mam/
//
// Figures: bench/README.md, "Figures: your data (issue 15)".
func BenchmarkCompactAfterRetention(b *testing.B) {
	const (
		members   = 50
		perMember = 8000
		history   = 120 * 24 * time.Hour
		retention = 30 * 24 * time.Hour
	)
	old := store.CommitInterval
	store.CommitInterval = 0 // the sweep's transactions commit at once
	defer func() { store.CommitInterval = old }()
	dir := b.TempDir()
	tmpl := filepath.Join(dir, "template.db")
	st, err := store.Open(tmpl)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(domain, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	m := of(srv) // not Register: no hooks, no retention timer; sweep is driven here
	m.stopped.Store(true)
	rng := rand.New(rand.NewPCG(15, 15)) // the same file every run
	genStart := time.Now()
	end := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	start := end.Add(-history)
	for u := range members {
		user := fmt.Sprintf("member%02d", u)
		if err := st.CreateAccount(user, "password of "+user, false); err != nil {
			b.Fatal(err)
		}
		err := st.Update(func(tx *bolt.Tx) error {
			for i := range perMember {
				peer := fmt.Sprintf("member%02d@%s", (u+1+rng.IntN(members-1))%members, domain)
				self := user + "@" + domain
				out := rng.IntN(2) == 0
				from, to := peer+"/phone", self+"/laptop"
				if out {
					from, to = to, from
				}
				el := stream.New(stream.NSClient, "message", "from", from, "to", to, "type", "chat", "id", strconv.Itoa(i)).
					Add(stream.New(stream.NSClient, "body").AddText(strings.Repeat("words ", 3+rng.IntN(48))))
				at := start.Add(time.Duration(i) * (history / perMember))
				if err := ImportTx(st, tx, user, out, peer, el, timeID(at)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	filled := time.Since(genStart)
	cutoff := timeID(end.Add(-retention))
	swept := 0
	for tick := 0; ; tick++ {
		if tick > 10*members*perMember/sweepRecords {
			b.Fatalf("retention still deleting after %d ticks (%d records)", tick, swept)
		}
		n, err := m.sweep(cutoff)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		swept += n
	}
	if want := members * perMember * 3 / 4; swept < want*9/10 || swept > want*11/10 {
		b.Fatalf("retention deleted %d records, want about %d", swept, want)
	}
	b.Logf("generated in %v, swept in %v", filled.Round(time.Second), (time.Since(genStart) - filled).Round(time.Second))
	if !st.WorthCompacting() {
		b.Fatalf("the swept file is not worth compacting (free %d)", st.FreeBytes())
	}
	st.Close()
	tmplBytes, err := os.ReadFile(tmpl)
	if err != nil {
		b.Fatal(err)
	}

	path := filepath.Join(dir, "xmppd.db")
	var c store.Compaction
	var startPath time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := os.WriteFile(path, tmplBytes, 0o600); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		s, err := store.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if !s.WorthCompacting() {
			b.Fatal("not worth compacting")
		}
		s.Close()
		if c, err = store.CompactFile(path); err != nil {
			b.Fatal(err)
		}
		if s, err = store.Open(path); err != nil {
			b.Fatal(err)
		}
		startPath += time.Since(t0)
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.StopTimer()
	startPath /= time.Duration(b.N)
	if c.After <= 0 || c.After >= c.Before {
		b.Fatalf("file %d → %d bytes: nothing returned", c.Before, c.After)
	}
	b.Logf("%d members × %d messages over %.0f days, retention %.0f days swept %d: file %.1f → %.1f MiB (%.1f MiB free inside before), %.1f MiB returned; CompactFile %.2f s, start path %.2f s",
		members, perMember, history.Hours()/24, retention.Hours()/24, swept, float64(c.Before)/(1<<20), float64(c.After)/(1<<20), float64(c.Free)/(1<<20),
		float64(c.Before-c.After)/(1<<20), c.Took.Seconds(), startPath.Seconds())
	b.ReportMetric(float64(c.Before-c.After), "bytes-returned")
	b.ReportMetric(float64(c.After), "bytes-after")
	b.ReportMetric(c.Took.Seconds(), "compact-s")
	b.ReportMetric(startPath.Seconds(), "start-s")
}
