package upload

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hearthchat/hearth/xmppd/web"
)

// onWeb mounts the service on the real web server (Host allowlist,
// path normalisation, headers) the way xmppd does, and returns its
// address. The app behind it answers "app".
func onWeb(t *testing.T, f *fixture) string {
	t.Helper()
	s, err := web.Start(web.Options{Addr: "127.0.0.1:0", Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.HandleStream(Prefix, f.u.Handler())
	s.SetApp(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	return s.Addr.String()
}

// raw sends a request with the path exactly as given (net/http's client
// would clean it) and returns the status and body.
func raw(t *testing.T, addr, method, path, body string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, path, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTraversal: no spelling of a path under /upload/ reads or writes
// anything but a file a slot names — dot segments plain, percent-encoded,
// double-encoded, as overlong UTF-8, with encoded slashes or backslashes,
// in the token's place or the name's.
func TestTraversal(t *testing.T) {
	f := newFixture(t, nil)
	addr := onWeb(t, f)
	// Secrets beside and above the upload directory.
	parent := filepath.Dir(f.o.Dir)
	os.WriteFile(filepath.Join(parent, "xmppd.db"), []byte("SECRET-DB"), 0o600)
	os.WriteFile(filepath.Join(f.o.Dir, "notes.txt"), []byte("SECRET-NOTE"), 0o600)
	data := []byte("the real file")
	url := f.slot("alice", "a.txt", int64(len(data)), "text/plain")
	tok := strings.Split(strings.TrimPrefix(url, f.ts.URL+Prefix), "/")[0]
	if code, _ := raw(t, addr, "PUT", Prefix+tok+"/a.txt", string(data)); code != 201 {
		t.Fatalf("the real PUT through the web server: %d", code)
	}
	paths := []string{
		"/upload/../xmppd.db",
		"/upload/%2e%2e/xmppd.db",
		"/upload/%2E%2E/%2E%2E/xmppd.db",
		"/upload/..%2fxmppd.db",
		"/upload/..%2Fxmppd.db",
		"/upload/%252e%252e/xmppd.db",
		"/upload/%252e%252e%252fxmppd.db",
		"/upload/..%5cxmppd.db",
		"/upload/..%255cxmppd.db",
		`/upload/..\xmppd.db`,
		"/upload/%c0%ae%c0%ae/xmppd.db",
		"/upload/notes.txt",
		"/upload/" + tok + "/../notes.txt",
		"/upload/" + tok + "/..%2fnotes.txt",
		"/upload/" + tok + "/%2e%2e%2f%2e%2e%2fxmppd.db",
		"/upload/" + tok + "/%252e%252e%252fxmppd.db",
		"/upload/" + tok + "/..%5c..%5cxmppd.db",
		"/upload/" + tok + "/a.txt/../../xmppd.db",
		"/upload/" + tok + "%2fa.txt",
		"/upload/" + tok + "%00/a.txt",
		"/upload//" + tok + "/a.txt",
		"/upload/./" + tok + "/../../xmppd.db",
	}
	before := listTree(t, parent)
	for _, p := range paths {
		for _, m := range []string{"GET", "PUT"} {
			code, body := raw(t, addr, m, p, "overwrite")
			if strings.Contains(body, "SECRET") || code/100 == 2 && body != "app" {
				t.Errorf("%s %s: %d %q", m, p, code, body)
			}
		}
	}
	if after := listTree(t, parent); after != before {
		t.Errorf("the tree changed:\nbefore %s\nafter  %s", before, after)
	}
	if _, b := f.get(url); !bytes.Equal(b, data) {
		t.Errorf("the real file changed: %q", b)
	}
}

func listTree(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			fmt.Fprintf(&b, "%s:%d ", strings.TrimPrefix(p, dir), fi.Size())
		}
		return nil
	})
	return b.String()
}

// TestLargeUploadMemoryFlat: a 100 MiB PUT through the web server is
// streamed to disk: the heap allocated for it stays a small fraction of
// the file (a handler that buffered the body, or a MaxBody cut, fails).
func TestLargeUploadMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MiB")
	}
	f := newFixture(t, nil)
	addr := onWeb(t, f)
	const size = 100 << 20
	url := f.slot("alice", "video.mp4", size, "video/mp4")
	path := strings.TrimPrefix(url, f.ts.URL)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest("PUT", "http://"+addr+path, io.LimitReader(zeros{}, size))
	req.ContentLength = size
	req.Header.Set("Content-Type", "video/mp4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if resp.StatusCode != 201 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("100 MiB PUT: %d KiB allocated in all (client and server), heap in use %d → %d KiB",
		alloc>>10, before.HeapInuse>>10, after.HeapInuse>>10)
	if alloc > 16<<20 {
		t.Errorf("a 100 MiB upload allocated %d MiB", alloc>>20)
	}
	fi, err := os.Stat(filepath.Join(f.o.Dir, f.files()[0]))
	if err != nil || fi.Size() != size {
		t.Fatalf("stored file: %v %v", fi, err)
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
