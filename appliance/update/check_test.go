package update

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// feed is a real TUF feed in a temporary directory, served over loopback
// HTTP the way a box would fetch it.
type feed struct {
	t      *testing.T
	dir    string
	keys   *Keys
	srv    *httptest.Server
	served atomic.Int64 // bytes of target files served
}

func newFeed(t *testing.T) *feed {
	t.Helper()
	keys, err := LoadOrCreateKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	f := &feed{t: t, dir: t.TempDir(), keys: keys}
	fs := http.FileServer(http.Dir(f.dir))
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/targets/") {
			w = &countingResponse{ResponseWriter: w, n: &f.served}
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

type countingResponse struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingResponse) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

// publish signs release n (with payload bytes as the amd64 root) using keys.
func (f *feed) publish(keys *Keys, n int, payload []byte, mod func(*Release)) {
	f.t.Helper()
	src := filepath.Join(f.t.TempDir(), "root.squashfs")
	if err := os.WriteFile(src, payload, 0o644); err != nil {
		f.t.Fatal(err)
	}
	r := Release{Custom: Custom{Release: n, Version: "r" + string(rune('0'+n))}, Files: map[string]string{"amd64": src}}
	if mod != nil {
		mod(&r)
	}
	if err := Publish(f.dir, keys, r); err != nil {
		f.t.Fatal(err)
	}
}

func (f *feed) client(running int) *Client {
	return &Client{Dir: filepath.Join(f.t.TempDir(), "update"), FeedURL: f.srv.URL, TrustedRoot: f.keys.Root, Arch: "amd64", Running: running}
}

func payload(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckAndDownload(t *testing.T) {
	ctx := context.Background()
	f := newFeed(t)
	p1 := payload(t, 300<<10)
	f.publish(f.keys, 1, p1, nil)
	c := f.client(0)
	o, err := c.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o.Release != 1 || o.Length() != int64(len(p1)) {
		t.Fatalf("offer = %+v, length %d", o.Custom, o.Length())
	}
	path, err := c.Download(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, p1) {
		t.Fatal("downloaded file differs from the published one")
	}
	fl, err := LoadFloors(c.Dir)
	if err != nil || fl.Time.IsZero() {
		t.Fatalf("time floor not persisted: %+v, %v", fl, err)
	}

	// v1 -> v2: the same client (its trusted metadata on disk) moves on.
	c.Running = 1
	if _, err := c.Check(ctx); !errors.Is(err, ErrUpToDate) {
		t.Fatalf("Check with release 1 running = %v, want ErrUpToDate", err)
	}
	f.publish(f.keys, 2, payload(t, 1000), nil)
	o, err = c.Check(ctx)
	if err != nil || o.Release != 2 {
		t.Fatalf("Check after release 2 = %+v, %v", o, err)
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		// setup publishes the bad feed (after a good release 2 was seen)
		setup func(f *feed, c *Client)
		want  string // substring of the error
		is    error
	}{
		{"wrong key", func(f *feed, c *Client) {
			other, err := LoadOrCreateKeys(filepath.Join(t.TempDir(), "other"))
			if err != nil {
				t.Fatal(err)
			}
			f.publish(other, 3, payload(t, 1000), nil)
		}, "refused", nil},
		{"older release", func(f *feed, c *Client) {
			f.publish(f.keys, 1, payload(t, 1000), nil)
		}, "", ErrDowngrade},
		{"stale metadata", func(f *feed, c *Client) {
			f.publish(f.keys, 3, payload(t, 1000), func(r *Release) {
				r.Now = time.Now().Add(-10 * 24 * time.Hour)
				r.TimestampExpiry = 7 * 24 * time.Hour
			})
		}, "expired", nil},
		{"stale metadata with the clock reset to 1970", func(f *feed, c *Client) {
			f.publish(f.keys, 3, payload(t, 1000), func(r *Release) {
				r.Now = time.Now().Add(-10 * 24 * time.Hour)
				r.TimestampExpiry = 7 * 24 * time.Hour
			})
			c.Now = func() time.Time { return time.Unix(0, 0) }
		}, "expired", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t)
			f.publish(f.keys, 2, payload(t, 1000), nil)
			c := f.client(1)
			o, err := c.Check(ctx)
			if err != nil || o.Release != 2 {
				t.Fatalf("good release 2: %+v, %v", o, err)
			}
			if err := SaveFloors(c.Dir, Floors{Release: 2}); err != nil {
				t.Fatal(err)
			}
			c.Running = 2
			tc.setup(f, c)
			o, err = c.Check(ctx)
			if err == nil {
				t.Fatalf("Check accepted %+v", o.Custom)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Check = %v, want %v", err, tc.is)
			}
			if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want it to mention %q", err, tc.want)
			}
			if fl, _ := LoadFloors(c.Dir); fl.Release != 2 {
				t.Fatalf("floor moved to %d", fl.Release)
			}
		})
	}
}

func TestDownloadRefusesBadFiles(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"tampered", func(b []byte) []byte { c := bytes.Clone(b); c[100] ^= 1; return c }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFeed(t)
			p := payload(t, 64<<10)
			f.publish(f.keys, 1, p, nil)
			c := f.client(0)
			o, err := c.Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(f.dir, "targets", TargetName("amd64"))
			if err := os.WriteFile(target, tc.damage(p), 0o644); err != nil {
				t.Fatal(err)
			}
			path, err := c.Download(ctx, o)
			if err == nil {
				t.Fatalf("Download accepted a %s file at %s", tc.name, path)
			}
			left, _ := filepath.Glob(filepath.Join(c.Dir, "download", "*"))
			if len(left) != 0 {
				t.Fatalf("refused download left files behind: %v", left)
			}
		})
	}
}

func TestDownloadResumes(t *testing.T) {
	ctx := context.Background()
	f := newFeed(t)
	p := payload(t, 200<<10)
	f.publish(f.keys, 1, p, nil)
	c := f.client(0)
	o, err := c.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// An earlier, interrupted download left the first 150 KiB.
	sum, _ := o.target.Hashes["sha256"], 0
	part := filepath.Join(c.Dir, "download", o.Name+"."+hexPrefix(sum)+".part")
	if err := os.MkdirAll(filepath.Dir(part), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(part, p[:150<<10], 0o600); err != nil {
		t.Fatal(err)
	}
	f.served.Store(0)
	path, err := c.Download(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, p) {
		t.Fatal("resumed download differs")
	}
	if n := f.served.Load(); n != 50<<10 {
		t.Fatalf("served %d bytes on resume, want %d", n, 50<<10)
	}
}

func hexPrefix(b []byte) string {
	const hx = "0123456789abcdef"
	var s []byte
	for _, c := range b[:8] {
		s = append(s, hx[c>>4], hx[c&15])
	}
	return string(s)
}

func TestFileFeed(t *testing.T) {
	f := newFeed(t)
	p := payload(t, 4096)
	f.publish(f.keys, 1, p, nil)
	c := f.client(0)
	c.FeedURL = "file://" + f.dir
	o, err := c.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	path, err := c.Download(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, p) {
		t.Fatal("file:// download differs")
	}
}

func TestFloorsOnlyRise(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	if err := SaveFloors(dir, Floors{Release: 5, Time: now}); err != nil {
		t.Fatal(err)
	}
	if err := SaveFloors(dir, Floors{Release: 3, Time: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFloors(dir)
	if err != nil || f.Release != 5 || !f.Time.Equal(now) {
		t.Fatalf("floors = %+v, %v", f, err)
	}
}

// A feed nobody re-released for weeks stays usable when its publisher
// refreshes it (make refresh-feed): the same release and files, fresh
// expiries, and boxes that trusted the old metadata accept the new.
func TestRefreshRevivesStaleFeed(t *testing.T) {
	ctx := context.Background()
	f := newFeed(t)
	p := payload(t, 2000)
	f.publish(f.keys, 2, p, nil)
	seen := f.client(1)
	if o, err := seen.Check(ctx); err != nil || o.Release != 2 {
		t.Fatalf("fresh feed: %+v, %v", o, err)
	}
	// Ten days later the timestamp has run out.
	f.publish(f.keys, 2, p, func(r *Release) { r.Now = time.Now().Add(-10 * 24 * time.Hour) })
	stale := f.client(1)
	if _, err := stale.Check(ctx); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("stale feed accepted: %v", err)
	}
	if err := Refresh(f.dir, f.keys, time.Time{}, 0, 0); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*Client{"a box that saw the feed before": seen, "a new box": stale} {
		o, err := c.Check(ctx)
		if err != nil || o.Release != 2 {
			t.Fatalf("%s after refresh: %+v, %v", name, o, err)
		}
		path, err := c.Download(ctx, o)
		if err != nil {
			t.Fatalf("%s: download after refresh: %v", name, err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, p) {
			t.Fatalf("%s: downloaded file differs", name)
		}
	}
	// Someone else's keys cannot refresh (and so vouch for) our feed.
	other, err := LoadOrCreateKeys(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Refresh(f.dir, other, time.Time{}, 0, 0); err == nil || !strings.Contains(err.Error(), "not signed by these keys") {
		t.Fatalf("refresh with other keys = %v", err)
	}
}
